package dev.ferry.cluster.store;

import java.io.Closeable;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.zookeeper.server.ServerCnxnFactory;
import org.apache.zookeeper.server.ZKDatabase;
import org.apache.zookeeper.server.ZooKeeperServer;
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
 */
public final class EmbeddedZooKeeper implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(EmbeddedZooKeeper.class);

    public enum State {
        LATENT,
        STARTED,
        CLOSED
    }

    public static final Duration TICK = Duration.ofMillis(200);

    private final Path dataDir;
    private final InetSocketAddress listen;
    private final AtomicReference<State> state = new AtomicReference<>(State.LATENT);
    private ZooKeeperServer server;
    private ServerCnxnFactory connections;

    /** {@code listen} with port 0 picks a free port; {@link #connectString()} tells which. */
    public EmbeddedZooKeeper(Path dataDir, InetSocketAddress listen) {
        this.dataDir = dataDir;
        this.listen = listen;
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
        connections = ServerCnxnFactory.createFactory(listen, 0, -1);
        try {
            connections.startup(server);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while starting ZooKeeper", e);
        }
        log.info("embedded ZooKeeper serving on {} with data in {}", connectString(), dataDir);
        return this;
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
    }
}
