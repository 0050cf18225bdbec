package dev.ferry.cluster.coordinator;

import static dev.ferry.cluster.coordinator.IntentStep.advance;
import static dev.ferry.cluster.coordinator.IntentStep.done;
import static dev.ferry.cluster.coordinator.IntentStep.set;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.cluster.DesiredState;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.VmPhase;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.vm.VmSpec;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.zookeeper.CreateMode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The intent-step recipe against a real ZooKeeper, with another writer changing things under it. */
class IntentStepTest {
    private ZkFixture zk;
    private ClusterStore store;
    private ClusterStore other;
    private ClusterView view;
    private ExecutorService workers;
    private final Claims claims = new Claims();
    private IntentStep steps;
    private Versioned<Intent> intent;

    @BeforeEach
    void up() throws Exception {
        zk = new ZkFixture();
        store = zk.store();
        other = zk.store();
        WriteGuard guard = WriteGuard.takeOffice(store, "leader", ZkFixture.latchNode(store), 0);
        view = new ClusterView(store);
        workers = Executors.newVirtualThreadPerTaskExecutor();
        Tx.Factory writes = new Tx.Factory(guard, view, Clocks.SYSTEM);
        Intents intents = new Intents(writes, workers, new dev.ferry.metrics.CoordinatorMetrics("t", "test"));
        steps = new IntentStep(writes, claims, intents);
        VmRecord r = VmOperations.record(
                        VmSpec.newBuilder().setName("v").setMemoryBytes(1 << 20).build())
                .setDesired(DesiredState.DESIRED_STATE_RUNNING)
                .setOwner("h1")
                .setEpoch(1)
                .setPhase(VmPhase.VM_PHASE_RUNNING)
                .build();
        store.commit(store.create(ClusterPaths.vm("v"), r, CreateMode.PERSISTENT));
        Intent i = Intents.intent(IntentKind.INTENT_KIND_STOP, "i1").setVm("v").build();
        store.commit(store.create(ClusterPaths.intent("i1"), i, CreateMode.PERSISTENT));
        intent = store.intent("i1").orElseThrow();
    }

    @AfterEach
    void down() throws Exception {
        view.close();
        workers.close();
        zk.close();
    }

    /** Another writer changes the VM record now. */
    private void otherWriterSetsReason(String reason) throws Exception {
        Versioned<VmRecord> now = other.vm("v").orElseThrow();
        other.commit(other.set(
                now.path(), now.value().toBuilder().setFailureReason(reason).build(), now.version()));
    }

    @Test
    void aWriteThatMeetsAnotherWritersChangeIsDecidedAgainFromAFreshRead() throws Exception {
        List<String> seen = new ArrayList<>();
        Intent end = steps.claimed(intent, "v", (fresh, i) -> {
            seen.add(fresh.record().getFailureReason());
            if (seen.size() == 1) {
                otherWriterSetsReason("written by another"); // between our read and our write
            }
            return done(
                    i,
                    set(
                            fresh.versioned(),
                            fresh.record().toBuilder()
                                    .setDesired(DesiredState.DESIRED_STATE_STOPPED)
                                    .build()),
                    "stopped");
        });
        assertEquals(List.of("", "written by another"), seen, "decided again from what the other wrote");
        assertEquals(IntentState.INTENT_STATE_DONE, end.getState());
        VmRecord r = store.vm("v").orElseThrow().value();
        assertEquals(DesiredState.DESIRED_STATE_STOPPED, r.getDesired());
        assertEquals("written by another", r.getFailureReason(), "the other writer's change was kept");
        assertEquals(
                IntentState.INTENT_STATE_DONE,
                store.intent("i1").orElseThrow().value().getState());
    }

    @Test
    void anIntentThatEndedMeanwhileIsTheOutcomeAndIsNotDecidedAgain() throws Exception {
        AtomicInteger decisions = new AtomicInteger();
        Intent end = steps.claimed(intent, "v", (fresh, i) -> {
            decisions.incrementAndGet();
            Versioned<Intent> now = other.intent("i1").orElseThrow();
            other.commit(other.set(
                    now.path(),
                    now.value().toBuilder()
                            .setState(IntentState.INTENT_STATE_DONE)
                            .setResult("ended elsewhere")
                            .build(),
                    now.version()));
            return advance(
                    set(fresh.versioned(), fresh.record()),
                    i.toBuilder().setState(IntentState.INTENT_STATE_RUNNING).build());
        });
        assertEquals(1, decisions.get());
        assertEquals("ended elsewhere", end.getResult());
    }

    @Test
    void aRecordThatKeepsChangingFailsTheIntentWithTheReason() throws Exception {
        AtomicInteger decisions = new AtomicInteger();
        Intent end = steps.claimed(intent, "v", (fresh, i) -> {
            otherWriterSetsReason("change " + decisions.incrementAndGet());
            return done(i, set(fresh.versioned(), fresh.record()), "never");
        });
        assertEquals(IntentStep.CONFLICTS, decisions.get());
        assertEquals(IntentState.INTENT_STATE_FAILED, end.getState());
        assertEquals("the record of v kept changing; try again", end.getError());
        assertEquals(
                IntentState.INTENT_STATE_FAILED,
                store.intent("i1").orElseThrow().value().getState());
    }

    @Test
    void aVmClaimedByAnotherIntentFailsTheIntentAsBusy() throws Exception {
        claims.claim("v", "other-intent");
        Intent end = steps.claimed(intent, "v", (fresh, i) -> {
            throw new AssertionError("a busy VM is not decided on");
        });
        assertEquals(IntentState.INTENT_STATE_FAILED, end.getState());
        assertEquals("VM 'v' is busy with intent other-intent; try again when it is done", end.getError());
        assertEquals("other-intent", claims.claimedBy("v"), "the other intent keeps its claim");
    }
}
