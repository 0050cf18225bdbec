package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.client.CoordinatorCallException;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.coordinator.MigrateRequest;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmState;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.TestCluster;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The VM lifecycle through the coordinator, on real agents and a real ZooKeeper. */
class ClusterLifecycleTest {
    static TestCluster cluster;
    static CoordinatorClient client;

    @BeforeAll
    static void up() throws Exception {
        cluster = TestCluster.start();
        cluster.coordinator(Duration.ofMillis(500));
        for (String h : List.of("h1", "h2")) {
            cluster.agent(h, Duration.ofSeconds(3), false);
        }
        client = cluster.client();
    }

    @AfterAll
    static void down() throws Exception {
        cluster.close();
    }

    @Test
    void aVmMigratesThroughTheClusterAndItsEpochMoves() throws Exception {
        VmView created = cluster.create(client, TestCluster.spec("web", 32L << 20, 2000), "h1");
        assertEquals("h1", created.getOwner());
        assertEquals(1, created.getEpoch());
        assertEquals(VmState.VM_STATE_RUNNING, created.getState());

        List<MigrationEvent> events = new ArrayList<>();
        MigrationEvent end = client.migrate(
                MigrateRequest.newBuilder()
                        .setVm("web")
                        .setTargetHost("h2")
                        .setOptions(MigrationOptions.newBuilder().setVerify(true))
                        .setRequestId(UUID.randomUUID().toString())
                        .build(),
                events::add);
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, end.getSummary().getStatus(), end.toString());
        assertTrue(end.getSummary().getMemoryVerified());
        assertFalse(events.isEmpty(), "progress was relayed");
        VmView after = client.vm("web");
        assertEquals("h2", after.getOwner());
        assertEquals(2, after.getEpoch());
        assertEquals(VmState.VM_STATE_RUNNING, after.getState());
        Timing.await(
                "web's heartbeat moving on h2",
                Duration.ofSeconds(5),
                () -> client.vm("web").getHeartbeat() > 0);
        assertTrue(
                cluster.runLog.doubleRuns().isEmpty(),
                cluster.runLog.doubleRuns().toString());

        VmView stopped = client.stopVm("web", UUID.randomUUID().toString());
        assertEquals(VmState.VM_STATE_STOPPED, stopped.getState());
        VmView started = client.startVm("web", UUID.randomUUID().toString());
        assertEquals(VmState.VM_STATE_RUNNING, started.getState());
        client.deleteVm("web", UUID.randomUUID().toString());
        CoordinatorCallException gone = assertThrows(CoordinatorCallException.class, () -> client.vm("web"));
        assertEquals(Status.Code.NOT_FOUND, gone.code());
        assertEquals("no VM named 'web' in the cluster", gone.getMessage());
    }

    /**
     * The I2 negative control of the chaos suite left a copy paused for ever: the record named
     * another host at a higher epoch, the old host kept its copy and run lock, and stop and delete
     * went only to the record's owner, so the delete waited in vain for the lock.
     */
    @Test
    void aStaleCopyOnAHostTheRecordNoLongerNamesIsStoppedAndDeletedToo() throws Exception {
        cluster.create(client, TestCluster.spec("stale", 32L << 20, 0), "h1");
        // Ownership moved behind the cluster's back (what a bug would do): h2 at epoch 2, while h1
        // still runs the copy at epoch 1 and holds its run lock.
        try (var c = cluster.zkClients(Duration.ofSeconds(10)).retrying()) {
            c.start();
            assertTrue(c.blockUntilConnected(30, java.util.concurrent.TimeUnit.SECONDS));
            var store = new dev.ferry.cluster.store.ClusterStore(c);
            var v = store.vm("stale").orElseThrow();
            store.commit(store.set(
                    dev.ferry.cluster.store.ClusterPaths.vm("stale"),
                    v.value().toBuilder().setOwner("h2").setEpoch(2).build(),
                    v.version()));
            client.stopVm("stale", UUID.randomUUID().toString());
            Timing.await("h1's stale copy stopped and its run lock released", Duration.ofSeconds(10), () -> {
                try {
                    return store.running("stale").isEmpty();
                } catch (Exception e) {
                    return false;
                }
            });
        }
        client.deleteVm("stale", UUID.randomUUID().toString());
        CoordinatorCallException gone = assertThrows(CoordinatorCallException.class, () -> client.vm("stale"));
        assertEquals(Status.Code.NOT_FOUND, gone.code());
    }
}
