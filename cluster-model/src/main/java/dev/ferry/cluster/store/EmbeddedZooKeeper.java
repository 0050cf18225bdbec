package dev.ferry.cluster.store;

import java.io.Closeable;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.zookeeper.server.ServerCnxnFactory;
import org.apache.zookeeper.server.ZKDatabase;
import org.apache.zookeeper.server.ZooKeeperServer;
import org.apache.zookeeper.server.auth.ProviderRegistry;
import org.apache.zookeeper.server.persistence.FileTxnSnapLog;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One real ZooKeeper server inside this process, its data under a directory: what `ferry cluster
 * up` and `ferry demo` run, so that a local cluster needs nothing installed. Production uses an
 * external ensemble (`--zk host:port,...`); nothing else in Ferry knows the difference.
 *
 * <p>The tick is short (200 ms) so that session expiry is detected promptly, and the session
 * timeout bounds are wide (1 s to 2 min) so that clients get the timeout they ask for: ZooKeeper's
 * defaults would clamp it to 2 to 20 ticks.
 *
 * <p>Given {@link ZkSecurity.X509} credentials, it serves one secure client port and no plaintext
 * one, with the settings of {@link ZkTls#serverConfig} (TLS 1.3, a client certificate of the
 * cluster CA required, clients named by their role, so the ACLs of {@link ZkAcls} apply; clients
 * whose certificate the credentials' revocation list names are refused, and their open connections
 * closed: see {@link RevocationCheckingX509Provider}), the credentials' certificate as the
 * server's (it must name the listen address, which clients check). ZooKeeper
 * reads a server's TLS settings from system properties, so these are set while it runs, and one
 * JVM runs at most one secure embedded server at a time.
 */
public final class EmbeddedZooKeeper implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(EmbeddedZooKeeper.class);

    public enum State {
        LATENT,
        STARTED,
        CLOSED
    }

    public static final Duration TICK = Duration.ofMillis(200);

    private static final Object SECURE_LOCK = new Object();
    /** The secure embedded server of this JVM, if one runs (guarded by SECURE_LOCK). */
    private static EmbeddedZooKeeper secureRunning;

    private final Path dataDir;
    private final InetSocketAddress listen;
    private final ZkSecurity security;
    /** System properties this server set, with the values they had before (null: unset). */
    private final Map<String, String> previousProperties = new LinkedHashMap<>();

    private final AtomicReference<State> state = new AtomicReference<>(State.LATENT);
    private ZooKeeperServer server;
    private ServerCnxnFactory connections;

    /** {@code listen} with port 0 picks a free port; {@link #connectString()} tells which. */
    public EmbeddedZooKeeper(Path dataDir, InetSocketAddress listen) {
        this(dataDir, listen, ZkSecurity.plaintext());
    }

    public EmbeddedZooKeeper(Path dataDir, InetSocketAddress listen, ZkSecurity security) {
        this.dataDir = dataDir;
        this.listen = listen;
        this.security = Objects.requireNonNull(security, "security");
    }

    public EmbeddedZooKeeper start() throws IOException {
        if (!state.compareAndSet(State.LATENT, State.STARTED)) {
            throw new IllegalStateException("embedded ZooKeeper is " + state.get());
        }
        Files.createDirectories(dataDir);
        FileTxnSnapLog snapLog = new FileTxnSnapLog(dataDir.toFile(), dataDir.toFile());
        int tick = (int) TICK.toMillis();
        server = new ZooKeeperServer(snapLog, tick, 1000, 120_000, -1, new ZKDatabase(snapLog), "");
        // 0: no limit on connections per client address; every local agent connects from loopback.
        connections = switch (security) {
            case ZkSecurity.Plaintext p -> ServerCnxnFactory.createFactory(listen, 0, -1);
            case ZkSecurity.X509 x -> secureConnections(x);
        };
        try {
            connections.startup(server);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while starting ZooKeeper", e);
        }
        log.info(
                "embedded ZooKeeper serving on {} ({}) with data in {}",
                connectString(),
                secure() ? "TLS with client certificates only" : "plaintext, no authentication",
                dataDir);
        return this;
    }

    private ServerCnxnFactory secureConnections(ZkSecurity.X509 x) throws IOException {
        synchronized (SECURE_LOCK) {
            if (secureRunning != null) {
                throw new IllegalStateException("a secure embedded ZooKeeper already runs in this JVM ("
                        + secureRunning.connectString() + "): ZooKeeper's server TLS settings are per JVM");
            }
            // ZooKeeper's registry initializes itself lazily, on the first lookup of a provider
            // (here: the first client's handshake), by building every zookeeper.authProvider.*
            // class anew and replacing what addOrUpdateProvider below put there. Spent now, before
            // this server's properties exist, so that the first secure server of a JVM builds its
            // RevocationCheckingX509Provider once, not twice (a start-up line, a revocation list
            // read and a discarded provider too many). A no-op once the registry is initialized.
            ProviderRegistry.initialize();
            var creds = x.credentials();
            Map<String, String> config = ZkTls.serverConfig(ZkTls.keyStore(creds), creds.ca(), creds.revocationList());
            String factoryKey = "zookeeper.serverCnxnFactory";
            config.forEach((k, v) -> {
                String key = "zookeeper." + k;
                if (!key.equals(factoryKey)) {
                    previousProperties.put(key, System.getProperty(key));
                    System.setProperty(key, v);
                }
            });
            // (Re)creates the provider from the properties just set: ZooKeeper keeps providers per
            // JVM, and an earlier server's would trust another CA.
            ProviderRegistry.addOrUpdateProvider("zookeeper.authProvider.x509");
            // The connection factory's class is also a system property, read once here: set only
            // for this call, so that plaintext servers started later keep ZooKeeper's default.
            String before = System.getProperty(factoryKey);
            ServerCnxnFactory f;
            try {
                System.setProperty(factoryKey, config.get("serverCnxnFactory"));
                f = ServerCnxnFactory.createFactory();
            } finally {
                restore(factoryKey, before);
            }
            f.configure(listen, 0, -1, true);
            secureRunning = this;
            return f;
        }
    }

    private static void restore(String key, String value) {
        if (value == null) {
            System.clearProperty(key);
        } else {
            System.setProperty(key, value);
        }
    }

    /** Whether clients must use TLS with a certificate (no plaintext port). */
    public boolean secure() {
        return security instanceof ZkSecurity.X509;
    }

    public String connectString() {
        return listen.getHostString() + ":" + connections.getLocalPort();
    }

    public int port() {
        return connections.getLocalPort();
    }

    @Override
    public void close() {
        if (state.getAndSet(State.CLOSED) != State.STARTED) {
            return;
        }
        connections.shutdown();
        server.shutdown();
        try {
            connections.join();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        synchronized (SECURE_LOCK) {
            if (secureRunning == this) {
                previousProperties.forEach(EmbeddedZooKeeper::restore);
                ProviderRegistry.removeProvider("x509");
                secureRunning = null;
            }
        }
    }
}
