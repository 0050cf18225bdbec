package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.testing.Timing;
import io.grpc.Status;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The commit phase of a standalone migration (the local commit: the destination agent is the
 * authority, the commit point is its receiving the Commit frame), one test per row of the failure
 * table in docs/ARCHITECTURE.md ("Failures", steps 6-7), with faults injected into the real sender
 * over real gRPC. {@link CommitPhaseTest} runs it on the sim driver, {@link QemuCommitPhaseTest} on
 * QEMU with the test guest.
 */
abstract class CommitPhaseContract {
    AgentPair pair;

    abstract AgentPair pair() throws Exception;

    abstract VmSpec guest(String name);

    /** Fails if the guest on {@code agent} found a page it had written missing or stale. */
    abstract void assertNoStalePages(Agent agent, String vm) throws Exception;

    @BeforeEach
    void start() throws Exception {
        pair = pair();
    }

    @AfterEach
    void stop() throws Exception {
        if (pair != null) {
            pair.close();
        }
    }

    long heartbeat(dev.ferry.agent.client.AgentClient client, String vm) {
        try {
            return client.getVm(vm).getHeartbeat();
        } catch (AgentCallException e) {
            return -1;
        }
    }

    void createRunning(String vm) {
        pair.createRunning(guest(vm));
        Timing.await("the guest's heartbeat", Duration.ofSeconds(20), () -> heartbeat(pair.clientA, vm) >= 2);
    }

    MigrationSummary migrate(String vm) {
        return pair.clientA
                .migrate(
                        MigrateRequest.newBuilder()
                                .setVm(vm)
                                .setTargetHost("host-b")
                                .setTargetEndpoint(pair.b.endpoint().toString())
                                .setOptions(MigrationOptions.newBuilder().setStreams(2))
                                .build(),
                        e -> {})
                .getSummary();
    }

    void assertRunsOnlyOnTheSource(String vm) throws Exception {
        Timing.await(
                "the source runs " + vm,
                Duration.ofSeconds(15),
                () -> pair.clientA.getVm(vm).getState() == VmState.VM_STATE_RUNNING);
        long beat = heartbeat(pair.clientA, vm);
        Timing.await(
                "the guest keeps counting on the source",
                Duration.ofSeconds(15),
                () -> heartbeat(pair.clientA, vm) > beat + 1);
        Timing.await("the destination discards", Duration.ofSeconds(15), () -> {
            try {
                return pair.clientB.listVms().isEmpty() && pair.ramFiles(pair.b) == 0;
            } catch (Exception e) {
                return false;
            }
        });
        assertEquals(1, pair.clientA.getVm(vm).getEpoch());
        assertNoStalePages(pair.a, vm);
    }

    void assertRunsOnlyOnTheDestination(String vm) throws Exception {
        AgentCallException gone = assertThrows(AgentCallException.class, () -> pair.clientA.getVm(vm));
        assertEquals(Status.Code.NOT_FOUND, gone.code());
        assertEquals(0, pair.ramFiles(pair.a), "the source released its copy");
        assertEquals(VmState.VM_STATE_RUNNING, pair.clientB.getVm(vm).getState());
        assertEquals(2, pair.clientB.getVm(vm).getEpoch());
        Timing.await("a heartbeat on B", Duration.ofSeconds(15), () -> heartbeat(pair.clientB, vm) > 0);
        long beat = heartbeat(pair.clientB, vm);
        Timing.await(
                "the guest keeps counting on B", Duration.ofSeconds(15), () -> heartbeat(pair.clientB, vm) > beat + 1);
        assertNoStalePages(pair.b, vm);
    }

    /**
     * Row "S cannot deliver Commit": the destination, READY, never gets the Commit. The source hears
     * no Resumed, closes its lanes and asks the destination; the destination, its lanes gone before
     * any Commit, settles its side first (not committed: it discards), so the source learns that and
     * resumes.
     */
    @Test
    void aCommitFrameThatNeverArrivesLeavesTheVmRunningOnTheSourceOnly() throws Exception {
        createRunning("c1");
        pair.a.injectSenderFaults(Faults.loseTheCommitFrame());

        MigrationSummary s = migrate("c1");

        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, s.getStatus(), s.toString());
        assertEquals(MigrationStep.MIGRATION_STEP_RESUME, s.getFailedStep(), s.getError());
        assertTrue(s.getError().contains("never took over"), s.getError());
        assertRunsOnlyOnTheSource("c1");
    }

    /**
     * Row "S hears no Resumed": the destination committed and runs; its Resumed is lost. The source
     * asks the destination, learns it has the VM, and releases its copy: the migration completed.
     */
    @Test
    void aResumedThatNeverArrivesStillCompletesAndOnlyTheDestinationRuns() throws Exception {
        createRunning("c2");
        pair.a.injectSenderFaults(Faults.loseTheResumed());

        MigrationSummary s = migrate("c2");

        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, s.getStatus(), s.getError());
        assertRunsOnlyOnTheDestination("c2");
    }

    /**
     * Row "T unreachable": the destination host goes away once it said Ready. The source cannot
     * learn whether the destination took the Commit (the local commit's authority is the
     * destination), so the VM stays paused on the source with the reason: running it could run it
     * twice.
     */
    @Test
    void aDestinationGoneAfterReadyLeavesTheVmPausedOnTheSourceWithTheReason() throws Exception {
        createRunning("c3");
        pair.a.injectSenderFaults(Faults.atReady(lanes -> pair.b.close()));

        MigrationSummary s = migrate("c3");

        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, s.getStatus(), s.toString());
        assertTrue(s.getError().contains("stays paused on host-a"), s.getError());
        assertEquals(VmState.VM_STATE_PAUSED, pair.clientA.getVm("c3").getState());
        assertTrue(
                pair.clientA.getVm("c3").getReason().contains("outcome is known"),
                pair.clientA.getVm("c3").getReason());
        // Paused means not executing: the guest's heartbeat stands still.
        long beat = heartbeat(pair.clientA, "c3");
        Thread.sleep(Timing.seconds(1.5).toMillis());
        assertEquals(beat, heartbeat(pair.clientA, "c3"), "the paused source guest made progress");
    }

    /**
     * Row "T loses its lanes while Ready": the destination asks the commit (the local one says no
     * Commit arrived, so it did not happen) and discards; the source's Commit then finds no
     * destination, the source learns that the destination never took over, and resumes.
     */
    @Test
    void aDestinationThatLosesItsLanesAtReadyDiscardsAndTheSourceRunsOn() throws Exception {
        createRunning("c4");
        pair.a.injectSenderFaults(Faults.atReady(lanes -> {
            lanes.cut();
            Timing.await("B to discard at READY", Duration.ofSeconds(15), () -> {
                try {
                    return pair.clientB.listVms().isEmpty();
                } catch (Exception e) {
                    return false;
                }
            });
        }));

        MigrationSummary s = migrate("c4");

        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, s.getStatus(), s.toString());
        assertRunsOnlyOnTheSource("c4");
    }
}
