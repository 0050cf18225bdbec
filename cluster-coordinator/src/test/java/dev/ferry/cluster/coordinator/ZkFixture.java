package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.ZkClients;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.test.TestingServer;
import org.apache.zookeeper.CreateMode;

/** A real ZooKeeper server in this JVM, cluster stores on it, and latch nodes as a LeaderLatch makes them. */
final class ZkFixture implements AutoCloseable {
    final TestingServer server;
    private final List<CuratorFramework> clients = new ArrayList<>();

    ZkFixture() throws Exception {
        server = new TestingServer(true);
    }

    /** A store on a session of its own, the layout in place. */
    ClusterStore store() throws Exception {
        CuratorFramework c = ZkClients.of(server.getConnectString(), "t", Duration.ofSeconds(10))
                .retrying();
        c.start();
        if (!c.blockUntilConnected(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("no ZooKeeper");
        }
        clients.add(c);
        ClusterStore store = new ClusterStore(c);
        store.ensureLayout();
        return store;
    }

    /** An ephemeral sequential node under /leader of {@code store}'s session: a replica's latch node. */
    static String latchNode(ClusterStore store) throws Exception {
        return store.client()
                .create()
                .withMode(CreateMode.EPHEMERAL_SEQUENTIAL)
                .forPath(ClusterPaths.LEADER + "/latch-");
    }

    @Override
    public void close() throws Exception {
        for (CuratorFramework c : clients) {
            c.close();
        }
        server.close();
    }
}
