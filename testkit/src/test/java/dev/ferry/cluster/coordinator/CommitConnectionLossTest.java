package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.coordinator.MigrateRequest;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmState;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.TcpProxy;
import dev.ferry.testkit.TestCluster;
import io.grpc.Status;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The source's commit write loses its connection: its outcome is unknown, both copies stay paused
 * until it is known, then exactly the owner the record names resumes. The proxy breaks the
 * source's ZooKeeper connection just after the write went out (with or without reaching the
 * server); the source reconnects on a new connection (ZooKeeper's client waits up to a second
 * before it tries), inside its fence deadline (with the connection broken right after an answered probe, 5/6 of its 6 s session after that probe; see FencePolicy).
 */
class CommitConnectionLossTest {
    TestCluster cluster;
    CoordinatorClient client;

    @BeforeEach
    void up() throws Exception {
        cluster = TestCluster.start();
        cluster.coordinator(Duration.ofMillis(500));
        cluster.agent("src", Duration.ofSeconds(6), true);
        cluster.agent("dst", Duration.ofSeconds(3), false);
        client = cluster.client();
        cluster.create(client, TestCluster.spec("v", 16L << 20, 1000), "src");
    }

    @AfterEach
    void down() throws Exception {
        cluster.close();
    }

    private MigrationEvent migrateWithFault(Consumer<TcpProxy> fault) {
        TcpProxy proxy = cluster.proxy("src");
        cluster.agent("src").member().beforeCommitWrite(r -> fault.accept(proxy));
        return client.migrate(
                MigrateRequest.newBuilder()
                        .setVm("v")
                        .setTargetHost("dst")
                        .setRequestId(UUID.randomUUID().toString())
                        .build(),
                e -> {});
    }

    @Test
    void aCommitWhoseReplyIsLostIsResolvedAsCommittedAndOnlyTheDestinationRuns() throws Exception {
        MigrationEvent end = migrateWithFault(p -> {
            p.dropRepliesOnOpenConnections();
            p.breakOpenConnectionsAfter(Duration.ofMillis(300));
        });

        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, end.getSummary().getStatus(), end.toString());
        VmView v = client.vm("v");
        assertEquals("dst", v.getOwner());
        assertEquals(2, v.getEpoch());
        assertEquals(VmState.VM_STATE_RUNNING, v.getState());
        assertEquals(List.of("dst"), cluster.runLog.runningOn("v"));
        assertTrue(
                cluster.runLog.doubleRuns().isEmpty(),
                cluster.runLog.doubleRuns().toString());
        // Both stayed paused while the outcome was unknown: the downtime covers the wait for the reconnection.
        assertTrue(
                end.getSummary().getDowntimeMs() > 300,
                "downtime " + end.getSummary().getDowntimeMs() + " ms");
        assertEquals(0, cluster.agent("src").member().fences(), "resolved without fencing");
    }

    @Test
    void aCommitWriteThatNeverArrivedIsResolvedAsRejectedAndOnlyTheSourceResumes() throws Exception {
        MigrationEvent end = migrateWithFault(p -> {
            p.blackholeOpenConnections();
            p.breakOpenConnectionsAfter(Duration.ofMillis(300));
        });

        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, end.getSummary().getStatus(), end.toString());
        VmView v = client.vm("v");
        assertEquals("src", v.getOwner());
        assertEquals(1, v.getEpoch());
        assertEquals(VmState.VM_STATE_RUNNING, v.getState());
        Timing.await("the source running v again", Duration.ofSeconds(10), () -> {
            try {
                return cluster.runLog.runningOn("v").equals(List.of("src"));
            } catch (java.io.IOException e) {
                return false;
            }
        });
        try (AgentClient dst = new AgentClient(
                Transport.plaintext(), "dst", cluster.agent("dst").agent().endpoint(), Duration.ofSeconds(5))) {
            AgentCallException gone = assertThrows(AgentCallException.class, () -> dst.getVm("v"));
            assertEquals(Status.Code.NOT_FOUND, gone.code());
        }
        assertTrue(
                cluster.runLog.doubleRuns().isEmpty(),
                cluster.runLog.doubleRuns().toString());
        assertEquals(0, cluster.agent("src").member().fences(), "resolved without fencing");
    }
}
