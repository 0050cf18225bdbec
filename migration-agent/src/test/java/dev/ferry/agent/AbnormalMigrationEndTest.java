package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.sim.SimVm;
import dev.ferry.migration.precopy.SenderFaults;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.vm.VmState;
import dev.ferry.testing.Timing;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A migration that ends abnormally, by an exception the engine does not expect (an Error: a bug,
 * a class that failed to load, a stack overflow), used to end the migration's thread without a
 * word: the Migrate call was never answered (the CLI or the coordinator waited forever, a Migrate
 * call has no deadline), the VM stayed MIGRATING_OUT for good (no other migration, stop or delete
 * could take it), and a guest paused for the switchover stayed paused.
 */
class AbnormalMigrationEndTest {
    private AgentPair pair;

    @BeforeEach
    void start() throws Exception {
        pair = new AgentPair();
    }

    @AfterEach
    void stop() throws Exception {
        pair.close();
    }

    private CompletableFuture<MigrationEvent> migrate(String vm) {
        return CompletableFuture.supplyAsync(() -> pair.clientA.migrate(
                MigrateRequest.newBuilder()
                        .setVm(vm)
                        .setTargetHost("host-b")
                        .setTargetEndpoint(pair.b.endpoint().toString())
                        .setOptions(MigrationOptions.newBuilder().setStreams(2))
                        .build(),
                e -> {}));
    }

    @Test
    void aMigrationEndedByAnUnexpectedErrorAnswersTheCallAndTheSourceRunsOn() throws Exception {
        pair.createRunning(AgentPair.busyGuest("v", 32L << 20, 2000));
        SimVm source = (SimVm) pair.a.instance("v");
        Timing.await("the guest runs", Duration.ofSeconds(10), () -> source.pageWrites() > 100);
        pair.a.injectSenderFaults(new SenderFaults() {
            @Override
            public void beforeCommit(Lanes lanes) {
                throw new Error("injected: an error the engine does not expect, at the commit point");
            }
        });

        MigrationEvent end = migrate("v").get(Timing.seconds(60).toMillis(), TimeUnit.MILLISECONDS);

        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, end.getSummary().getStatus(), end.toString());
        assertTrue(
                end.getSummary().getError().contains("injected"),
                end.getSummary().getError());
        // The source was paused for the switchover: it runs again, and B let go of its copy.
        Timing.await(
                "the source runs again",
                Duration.ofSeconds(10),
                () -> pair.clientA.getVm("v").getState() == VmState.VM_STATE_RUNNING);
        long beat = source.heartbeat();
        Timing.await("the source keeps counting", Duration.ofSeconds(10), () -> source.heartbeat() > beat + 5);
        Timing.await("B discards", Duration.ofSeconds(20), () -> {
            try {
                return pair.clientB.listVms().isEmpty() && pair.ramFiles(pair.b) == 0;
            } catch (Exception e) {
                return false;
            }
        });
        // And it can move again.
        pair.a.injectSenderFaults(SenderFaults.NONE);
        MigrationEvent again = migrate("v").get(Timing.seconds(60).toMillis(), TimeUnit.MILLISECONDS);
        assertEquals(
                MigrationPhase.MIGRATION_PHASE_COMPLETED,
                again.getSummary().getStatus(),
                again.getSummary().getError());
        assertEquals(VmState.VM_STATE_RUNNING, pair.clientB.getVm("v").getState());
    }
}
