package dev.ferry.cluster.store;

import java.time.Duration;
import java.util.Objects;
import org.apache.curator.RetryPolicy;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.retry.RetryNTimes;

/**
 * Curator clients built one way for the whole of Ferry.
 *
 * @param connect ZooKeeper connect string (host:port,host:port)
 * @param cluster the cluster's name: its namespace is /ferry/NAME
 * @param sessionTimeout asked of ZooKeeper; the ensemble may grant another (its min/max session
 *     timeout), and fencing uses the granted one
 * @param connectionTimeout how long an operation waits for a connection before failing
 */
public record ZkClients(String connect, String cluster, Duration sessionTimeout, Duration connectionTimeout) {
    public ZkClients {
        Objects.requireNonNull(connect, "connect");
        if (connect.isBlank()) {
            throw new IllegalArgumentException("empty ZooKeeper connect string");
        }
        ClusterPaths.namespace(cluster);
        if (sessionTimeout.toMillis() < 1000) {
            throw new IllegalArgumentException(
                    "session timeout must be at least 1000 ms, got " + sessionTimeout.toMillis());
        }
    }

    public static ZkClients of(String connect, String cluster, Duration sessionTimeout) {
        return new ZkClients(
                connect,
                cluster,
                sessionTimeout,
                Duration.ofMillis(Math.max(1000, Math.min(15_000, sessionTimeout.toMillis() / 2))));
    }

    public ZkClients withSessionTimeout(Duration t) {
        return of(connect, cluster, t);
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
                .zookeeperFactory((connectString, timeout, watcher, canBeReadOnly) -> first.getAndSet(false)
                        ? new org.apache.zookeeper.ZooKeeper(
                                connectString, timeout, watcher, sessionId, password.clone(), canBeReadOnly)
                        : new org.apache.zookeeper.ZooKeeper(connectString, timeout, watcher, canBeReadOnly))
                .build();
    }

    private CuratorFramework build(RetryPolicy retry) {
        return builder(retry).build();
    }

    private CuratorFrameworkFactory.Builder builder(RetryPolicy retry) {
        return CuratorFrameworkFactory.builder()
                .connectString(connect)
                .namespace(ClusterPaths.namespace(cluster))
                .sessionTimeoutMs((int) sessionTimeout.toMillis())
                .connectionTimeoutMs((int) connectionTimeout.toMillis())
                .maxCloseWaitMs(1000)
                .retryPolicy(retry);
    }
}
