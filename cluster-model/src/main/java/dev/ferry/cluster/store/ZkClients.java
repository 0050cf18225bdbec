package dev.ferry.cluster.store;

import java.time.Duration;
import java.util.Objects;
import org.apache.curator.RetryPolicy;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;
import org.apache.curator.utils.ZookeeperFactory;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.client.ConnectStringParser;
import org.apache.zookeeper.client.StaticHostProvider;
import org.apache.zookeeper.client.ZKClientConfig;

/**
 * Curator clients built one way for the whole of Ferry.
 *
 * @param connect ZooKeeper connect string (host:port,host:port)
 * @param cluster the cluster's name: its namespace is /ferry/NAME
 * @param sessionTimeout asked of ZooKeeper; the ensemble may grant another (its min/max session
 *     timeout), and fencing uses the granted one
 * @param connectionTimeout how long an operation waits for a connection before failing
 * @param security plaintext, or TLS with a client certificate and ACLs on every node created
 */
public record ZkClients(
        String connect, String cluster, Duration sessionTimeout, Duration connectionTimeout, ZkSecurity security) {
    public ZkClients {
        Objects.requireNonNull(connect, "connect");
        Objects.requireNonNull(security, "security");
        if (security instanceof ZkSecurity.X509 x
                && !x.credentials().identity().cluster().equals(cluster)) {
            throw new IllegalArgumentException(
                    "the certificate of " + x.credentials().identity() + " is not of cluster " + cluster);
        }
        if (connect.isBlank()) {
            throw new IllegalArgumentException("empty ZooKeeper connect string");
        }
        ClusterPaths.namespace(cluster);
        if (sessionTimeout.toMillis() < 1000) {
            throw new IllegalArgumentException(
                    "session timeout must be at least 1000 ms, got " + sessionTimeout.toMillis());
        }
    }

    /**
     * After a client of these settings got no session: what each server did with a connection
     * made the same way (see {@link ZkProbe}), for the error an operator reads.
     */
    public String whyNoSession() {
        return ZkProbe.explain(connect, security, PROBE_WAIT);
    }

    /** How long a probe waits for each server to close a connection it refuses. */
    private static final Duration PROBE_WAIT = Duration.ofMillis(1500);

    /** Plaintext clients (clusters run with --insecure, tests of other things). */
    public static ZkClients of(String connect, String cluster, Duration sessionTimeout) {
        return of(connect, cluster, sessionTimeout, ZkSecurity.plaintext());
    }

    public static ZkClients of(String connect, String cluster, Duration sessionTimeout, ZkSecurity security) {
        return new ZkClients(
                connect,
                cluster,
                sessionTimeout,
                Duration.ofMillis(Math.max(1000, Math.min(15_000, sessionTimeout.toMillis() / 2))),
                security);
    }

    public ZkClients withSessionTimeout(Duration t) {
        return of(connect, cluster, t, security);
    }

    public ZkClients withSecurity(ZkSecurity s) {
        return new ZkClients(connect, cluster, sessionTimeout, connectionTimeout, s);
    }

    /** For services built on Curator recipes: failed operations retry a few times. */
    public CuratorFramework retrying() {
        return build(new ExponentialBackoffRetry(100, 3, 1000));
    }

    /**
     * One attempt per operation: the caller sees every lost connection and decides itself. The
     * agent's side uses this, because a commit whose outcome is unknown must be reported as such,
     * not retried blindly.
     */
    public CuratorFramework singleAttempt() {
        return build(new RetryNTimes(0, 0));
    }

    /**
     * Like {@link #singleAttempt()}, but its first connection resumes the session {@code sessionId}
     * (an agent restarted for an upgrade takes over its predecessor's session, and with it the
     * host's registration and its guests' run locks, if the session has not expired). Once that
     * session is gone (expired, or refused), the client opens fresh sessions as usual.
     */
    public CuratorFramework singleAttemptResuming(long sessionId, byte[] password) {
        java.util.concurrent.atomic.AtomicBoolean first = new java.util.concurrent.atomic.AtomicBoolean(true);
        return builder(new RetryNTimes(0, 0))
                .zookeeperFactory(new ZookeeperFactory() {
                    @Override
                    public ZooKeeper newZooKeeper(String connectString, int timeout, Watcher watcher, boolean ro)
                            throws Exception {
                        return newZooKeeper(connectString, timeout, watcher, ro, new ZKClientConfig());
                    }

                    // Curator calls this one with the builder's client config (TLS settings).
                    @Override
                    public ZooKeeper newZooKeeper(
                            String connectString, int timeout, Watcher watcher, boolean ro, ZKClientConfig config)
                            throws Exception {
                        if (!first.getAndSet(false)) {
                            return new ZooKeeper(connectString, timeout, watcher, ro, config);
                        }
                        return new ZooKeeper(
                                connectString,
                                timeout,
                                watcher,
                                sessionId,
                                password.clone(),
                                ro,
                                new StaticHostProvider(new ConnectStringParser(connectString).getServerAddresses()),
                                config);
                    }
                })
                .build();
    }

    private CuratorFramework build(RetryPolicy retry) {
        return builder(retry).build();
    }

    private CuratorFrameworkFactory.Builder builder(RetryPolicy retry) {
        CuratorFrameworkFactory.Builder b = CuratorFrameworkFactory.builder()
                .connectString(connect)
                .namespace(ClusterPaths.namespace(cluster))
                .sessionTimeoutMs((int) sessionTimeout.toMillis())
                .connectionTimeoutMs((int) connectionTimeout.toMillis())
                .maxCloseWaitMs(1000)
                .retryPolicy(retry);
        return switch (security) {
            case ZkSecurity.Plaintext p -> b;
            // A fresh config per client: ZooKeeper keeps per-connection state in it.
            case ZkSecurity.X509 x ->
                b.zkClientConfig(ZkTls.clientConfig(x.credentials())).aclProvider(new ZkAcls(cluster));
        };
    }
}
