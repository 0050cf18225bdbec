package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmState;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.ForwardingAgentActions;
import dev.ferry.testkit.TestCluster;
import io.grpc.Status;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;
import org.apache.curator.framework.CuratorFramework;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The ownership commit checks the coordinator's intent (docs/ARCHITECTURE.md, "The commit"): a
 * source cannot commit a migration to a host the intent does not name, nor one whose intent ended
 * before the switchover. Real gRPC between three agents in this JVM and a real ZooKeeper server;
 * the faults are a source ordered to another host than the intent names (what a buggy or confused
 * order path would do) and an intent that fails between the source's reads and its transaction.
 * The refused commit leaves the VM where it was, running, and the run log shows no double run.
 */
class CommitOutsideTheIntentTest {
    TestCluster cluster;
    CoordinatorClient client;
    CuratorFramework intruder;
    /** Where migrate orders really send the VM (null: where the intent says). */
    volatile String redirectTo;

    @BeforeEach
    void up() throws Exception {
        cluster = TestCluster.start();
        cluster.coordinator(Duration.ofMillis(500), new ForwardingAgentActions(TestCluster.grpcAgents()) {
            @Override
            public MigrationEvent migrate(HostRecord source, MigrateRequest request, Consumer<MigrationEvent> events) {
                String to = redirectTo;
                if (to == null) {
                    return inner.migrate(source, request, events);
                }
                // The order names another destination than the intent the coordinator wrote.
                return inner.migrate(
                        source,
                        request.toBuilder()
                                .setTargetHost(to)
                                .setTargetEndpoint(
                                        cluster.agent(to).agent().endpoint().toString())
                                .build(),
                        events);
            }
        });
        cluster.agent("src", Duration.ofSeconds(6), false);
        cluster.agent("dst", Duration.ofSeconds(6), false);
        cluster.agent("rogue", Duration.ofSeconds(6), false);
        client = cluster.client();
        cluster.create(client, TestCluster.spec("v", 16L << 20, 1000), "src");
        intruder = cluster.zkClients(Duration.ofSeconds(10)).retrying();
        intruder.start();
    }

    @AfterEach
    void down() throws Exception {
        if (client != null) {
            client.close();
        }
        if (intruder != null) {
            intruder.close();
        }
        if (cluster != null) {
            cluster.close();
        }
    }

    private MigrationEvent migrate(String requestId) {
        return client.migrate(
                dev.ferry.proto.coordinator.MigrateRequest.newBuilder()
                        .setVm("v")
                        .setTargetHost("dst")
                        .setRequestId(requestId)
                        .build(),
                e -> {});
    }

    private ClusterStore store() {
        return new ClusterStore(intruder);
    }

    private boolean holds(String host) {
        try (AgentClient a = new AgentClient(
                Transport.plaintext(), host, cluster.agent(host).agent().endpoint(), Duration.ofSeconds(5))) {
            a.getVm("v");
            return true;
        } catch (AgentCallException e) {
            return e.code() != Status.Code.NOT_FOUND;
        }
    }

    private void assertStillOnSourceOnly() throws Exception {
        VmRecord r = store().vm("v").orElseThrow().value();
        assertEquals("src", r.getOwner(), "ownership unchanged");
        assertEquals(1, r.getEpoch(), "epoch unchanged");
        Timing.await("v to run on src only", Duration.ofSeconds(15), () -> {
            try {
                return cluster.runLog.runningOn("v").equals(List.of("src"));
            } catch (java.io.IOException e) {
                return false;
            }
        });
        VmView v = client.vm("v");
        assertEquals(VmState.VM_STATE_RUNNING, v.getState(), v.toString());
        assertEquals("src", store().running("v").orElseThrow().value().getHostId(), "src keeps its run lock");
        Timing.await("the refused destinations to discard their copies", Duration.ofSeconds(15), () -> {
            return !holds("dst") && !holds("rogue");
        });
        assertTrue(
                cluster.runLog.doubleRuns().isEmpty(),
                cluster.runLog.doubleRuns().toString());
    }

    @Test
    void aSourceOrderedToAHostTheIntentDoesNotNameCannotCommitTheMigrationThere() throws Exception {
        redirectTo = "rogue";
        MigrationEvent end = migrate(UUID.randomUUID().toString());
        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, end.getSummary().getStatus(), end.toString());
        String error = end.getSummary().getError();
        assertTrue(error.contains("ownership commit was rejected") && error.contains("did not choose rogue"), error);
        assertStillOnSourceOnly();

        // The same cluster, the order as the coordinator meant it: the commit goes through.
        redirectTo = null;
        MigrationEvent ok = migrate(UUID.randomUUID().toString());
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, ok.getSummary().getStatus(), ok.toString());
        VmRecord r = store().vm("v").orElseThrow().value();
        assertEquals("dst", r.getOwner());
        assertEquals(2, r.getEpoch());
        Timing.await("v to run on dst only", Duration.ofSeconds(15), () -> {
            try {
                return cluster.runLog.runningOn("v").equals(List.of("dst"));
            } catch (java.io.IOException e) {
                return false;
            }
        });
        assertTrue(
                cluster.runLog.doubleRuns().isEmpty(),
                cluster.runLog.doubleRuns().toString());
    }

    /**
     * The intent fails after the source read it and before its transaction: the transaction's
     * version check of the intent fails, the source reads again, finds the intent over and refuses.
     */
    @Test
    void aCommitWhoseIntentFailedBeforeTheSwitchoverIsRefused() throws Exception {
        String id = UUID.randomUUID().toString();
        AtomicBoolean failed = new AtomicBoolean();
        cluster.agent("src").member().beforeCommitWrite(r -> {
            if (failed.compareAndSet(false, true)) {
                try {
                    Versioned<Intent> i = store().intent(id).orElseThrow();
                    store().commit(store().set(
                                    i.path(),
                                    i.value().toBuilder()
                                            .setState(IntentState.INTENT_STATE_FAILED)
                                            .setError("given up by the test")
                                            .build(),
                                    i.version()));
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }
        });
        MigrationEvent end = migrate(id);
        assertTrue(failed.get(), "the intent was failed at the switchover");
        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, end.getSummary().getStatus(), end.toString());
        assertStillOnSourceOnly();
    }

    /**
     * The target's session ends after it said ready and before the source's transaction (here its
     * ephemeral registration is deleted at that moment, as ZooKeeper does when the session
     * expires): the transaction's existence check fails, the source reads again, finds the target
     * gone and refuses, so the VM runs on at the source instead of being handed to a dead host.
     */
    @Test
    void aCommitToATargetThatLostItsSessionBeforeTheSwitchoverIsRefused() throws Exception {
        AtomicBoolean gone = new AtomicBoolean();
        cluster.agent("src").member().beforeCommitWrite(r -> {
            try {
                if (store().host("dst").isPresent()) {
                    intruder.delete().forPath(dev.ferry.cluster.store.ClusterPaths.host("dst"));
                    gone.set(true);
                }
            } catch (Exception e) {
                throw new AssertionError(e);
            }
        });
        MigrationEvent end = migrate(UUID.randomUUID().toString());
        assertTrue(gone.get(), "the target's registration was removed at the switchover");
        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, end.getSummary().getStatus(), end.toString());
        String error = end.getSummary().getError();
        assertTrue(
                error.contains("is no longer a live member of the cluster")
                        || error.contains("kept changing under the commit"),
                error);
        assertStillOnSourceOnly();
    }
}
