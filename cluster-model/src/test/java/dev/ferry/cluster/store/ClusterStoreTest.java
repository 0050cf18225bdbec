package dev.ferry.cluster.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.vm.VmSpec;
import java.time.Duration;
import java.util.Optional;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.test.TestingCluster;
import org.apache.zookeeper.KeeperException;
import org.junit.jupiter.api.Test;

/** ClusterStore against a real ZooKeeper ensemble (three servers in this process). */
class ClusterStoreTest {
    static {
        // A server of an in-process ensemble that cannot bind its election port while another one
        // shuts down calls System.exit, which kills the whole test JVM (seen in CI-like runs): log it.
        org.apache.zookeeper.util.ServiceUtils.setSystemExitProcedure(org.apache.zookeeper.util.ServiceUtils.LOG_ONLY);
    }

    private static VmRecord record(String owner, long epoch) {
        return VmRecord.newBuilder()
                .setSchemaVersion(Records.SCHEMA_VERSION)
                .setSpec(VmSpec.newBuilder().setName("web").setMemoryBytes(1 << 20))
                .setOwner(owner)
                .setEpoch(epoch)
                .build();
    }

    /**
     * A synced read from another client, connected to another server, sees a write committed just
     * before, every time; and it reads through the namespace like every other read.
     */
    @Test
    void aSyncedReadSeesWhatAnotherSessionJustCommitted() throws Exception {
        try (TestingCluster ensemble = new TestingCluster(3)) {
            ensemble.start();
            var servers = ensemble.getInstances().iterator();
            ZkClients first = ZkClients.of(servers.next().getConnectString(), "t", Duration.ofSeconds(10));
            ZkClients second = ZkClients.of(servers.next().getConnectString(), "t", Duration.ofSeconds(10));
            try (CuratorFramework a = first.singleAttempt();
                    CuratorFramework b = second.singleAttempt()) {
                a.start();
                b.start();
                assertTrue(a.blockUntilConnected(10, java.util.concurrent.TimeUnit.SECONDS));
                assertTrue(b.blockUntilConnected(10, java.util.concurrent.TimeUnit.SECONDS));
                ClusterStore writer = new ClusterStore(a);
                ClusterStore reader = new ClusterStore(b);
                writer.ensureLayout();
                assertEquals(Optional.empty(), reader.vmSynced("web", Duration.ofSeconds(5)));
                writer.commit(writer.create(
                        ClusterPaths.vm("web"), record("h1", 1), org.apache.zookeeper.CreateMode.PERSISTENT));
                for (int epoch = 2; epoch < 50; epoch++) {
                    Versioned<VmRecord> now = writer.vm("web").orElseThrow();
                    writer.commit(writer.set(now.path(), record("h" + epoch, epoch), now.version()));
                    Versioned<VmRecord> seen =
                            reader.vmSynced("web", Duration.ofSeconds(5)).orElseThrow();
                    assertEquals(epoch, seen.value().getEpoch(), "a synced read missed a committed write");
                    assertEquals(now.version() + 1, seen.version());
                    assertEquals(ClusterPaths.vm("web"), seen.path());
                }
            }
        }
    }

    @Test
    void aSyncedReadWithoutAConnectionFailsInsteadOfAnsweringFromNothing() throws Exception {
        try (TestingCluster ensemble = new TestingCluster(1)) {
            ensemble.start();
            ZkClients clients = ZkClients.of(ensemble.getConnectString(), "t", Duration.ofSeconds(10));
            try (CuratorFramework c = clients.singleAttempt()) {
                c.start();
                assertTrue(c.blockUntilConnected(10, java.util.concurrent.TimeUnit.SECONDS));
                ClusterStore store = new ClusterStore(c);
                store.ensureLayout();
                ensemble.stop();
                assertThrows(KeeperException.class, () -> store.vmSynced("web", Duration.ofSeconds(2)));
            }
        }
    }
}
