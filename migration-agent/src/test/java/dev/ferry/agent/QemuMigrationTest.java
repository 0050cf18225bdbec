package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import dev.ferry.proto.vm.Workload;
import dev.ferry.testing.Timing;
import io.grpc.Status;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Real QEMU guests (the Ferry test guest, TCG here) moved between two agents over real gRPC, with
 * Ferry's pre-copy from the kernel's dirty tracking and QEMU's own device state.
 */
class QemuMigrationTest {
    private AgentPair pair;

    @BeforeEach
    void start() throws Exception {
        QemuTestSupport.requireQemu();
        QemuTestSupport.requireDirtyTracking();
        pair = AgentPair.qemu();
    }

    @AfterEach
    void stop() throws Exception {
        if (pair != null) {
            pair.close();
            assertEquals(List.of(), AgentPair.processesUsing(pair.root), "no QEMU may outlive its agent");
        }
    }

    private static VmSpec guest(String name, long pagesPerSecond) {
        return VmSpec.newBuilder()
                .setSchemaVersion(1)
                .setName(name)
                .setMemoryBytes(128L << 20)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder()
                        .setDirtyRatePagesPerSec(pagesPerSecond)
                        .setWorkingSetBytes(32L << 20)
                        .setPattern(Pattern.PATTERN_RANDOM))
                .build();
    }

    private long heartbeat(String vm) {
        try {
            return pair.clientA.getVm(vm).getHeartbeat();
        } catch (AgentCallException e) {
            return -1;
        }
    }

    private void createRunning(VmSpec spec) {
        pair.clientA.createVm(
                CreateVmRequest.newBuilder().setSpec(spec).setStart(true).build());
        Timing.await("the guest's heartbeat", Duration.ofSeconds(20), () -> heartbeat(spec.getName()) >= 2);
    }

    private MigrationSummary migrate(String vm, MigrationOptions options, Consumer<MigrationEvent> events) {
        return pair.clientA
                .migrate(
                        MigrateRequest.newBuilder()
                                .setVm(vm)
                                .setTargetHost("host-b")
                                .setTargetEndpoint(pair.b.endpoint().toString())
                                .setOptions(options)
                                .build(),
                        events)
                .getSummary();
    }

    /** A bandwidth cap that keeps round 0 long enough to strike in the middle of it. */
    private static MigrationOptions slowRound0() {
        return MigrationOptions.newBuilder()
                .setMaxBandwidthBytesPerSec(4L << 20)
                .build();
    }

    /** Runs {@code fault} once, at the first progress report of round 0 (the migration is then mid-stream). */
    private static Consumer<MigrationEvent> onFirstProgress(Runnable fault) {
        boolean[] done = {false};
        return e -> {
            if (e.hasRound() && e.getRound().getPartial() && !done[0]) {
                done[0] = true;
                fault.run();
            }
        };
    }

    private String console(Path runDir) throws IOException {
        Path log = runDir.resolve("console.log");
        return Files.exists(log) ? Files.readString(log, StandardCharsets.US_ASCII) : "";
    }

    private Path runDir(Agent agent, String vm) {
        return pair.root.resolve(agent.hostId() + "-data").resolve("vms").resolve(vm);
    }

    /** The source keeps running and counting; the destination holds neither the VM, nor a QEMU, nor a RAM file. */
    private void assertSourceRunningAndDestinationClean(String vm) throws Exception {
        // A source whose resume failed (a frozen QEMU) is resumed in the background once it answers.
        Timing.await(
                "the source runs",
                Duration.ofSeconds(15),
                () -> pair.clientA.getVm(vm).getState() == VmState.VM_STATE_RUNNING);
        long beat = pair.clientA.getVm(vm).getHeartbeat();
        Timing.await("the source guest keeps counting", Duration.ofSeconds(10), () -> heartbeat(vm) > beat);
        Timing.await("the destination discards", Duration.ofSeconds(15), () -> {
            try {
                return pair.clientB.listVms().isEmpty()
                        && pair.ramFiles(pair.b) == 0
                        && AgentPair.processesUsing(pair.ramDir(pair.b)).isEmpty();
            } catch (Exception e) {
                return false;
            }
        });
        assertFalse(console(runDir(pair.a, vm)).contains("STALE"), "the source guest found a stale page");
    }

    @Test
    void aDirtyingTestGuestMovesLiveAndKeepsCounting() throws Exception {
        createRunning(guest("g1", 2000));
        long before = heartbeat("g1");
        MigrationSummary s = migrate(
                "g1",
                MigrationOptions.newBuilder().setVerify(true).setStreams(2).build(),
                e -> {});

        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, s.getStatus(), s.getError());
        assertTrue(s.getMemoryVerified(), "destination RAM equals source RAM at the pause point");
        assertTrue(s.getRounds() >= 2, "rounds: " + s.getRounds());
        assertTrue(
                s.getDeviceStateBytes() > 0 && s.getDeviceStateBytes() < (4 << 20),
                "x-ignore-shared: only device state crosses QEMU's stream, " + s.getDeviceStateBytes() + " bytes");

        VmStatus moved = pair.clientB.getVm("g1");
        assertEquals(VmState.VM_STATE_RUNNING, moved.getState());
        assertEquals(2, moved.getEpoch());
        assertEquals(List.of(), AgentPair.processesUsing(pair.ramDir(pair.a)), "the source QEMU is gone");
        assertEquals(0, pair.ramFiles(pair.a));
        // The destination's console starts empty: wait for the guest's first line there.
        Timing.await(
                "a heartbeat on B",
                Duration.ofSeconds(10),
                () -> pair.clientB.getVm("g1").getHeartbeat() > 0);
        long arrived = pair.clientB.getVm("g1").getHeartbeat();
        assertTrue(arrived >= before, "the heartbeat continues from " + before + ", it does not restart: " + arrived);
        Timing.await(
                "the guest keeps counting on B",
                Duration.ofSeconds(15),
                () -> pair.clientB.getVm("g1").getHeartbeat() > arrived + 2);
        String console = console(runDir(pair.b, "g1"));
        assertFalse(console.contains("STALE"), "the guest found a page Ferry lost:\n" + console);
    }

    /**
     * The test guest's working set for the negative controls: 4 MiB (1024 pages) at 2000 writes/s,
     * so the guest comes back to any page of it within a second or two. It starts at 2 MiB plus its
     * generation table (8 KiB), and ends at page 0x602.
     */
    private static VmSpec smallWorkingSet(String name) {
        VmSpec g = guest(name, 2000);
        return g.toBuilder()
                .setWorkload(g.getWorkload().toBuilder().setWorkingSetBytes(4L << 20))
                .build();
    }

    private static final long SMALL_WORKING_SET_END = 0x602;

    @Test
    void aPageDroppedFromTheFinalRoundFailsVerifyAndTheSourceRunsOn() throws Exception {
        createRunning(smallWorkingSet("d1"));
        AtomicLong dropped = new AtomicLong(-2);
        pair.a.injectSenderFaults(Faults.dropAPageWrittenAfterTheLastRound(SMALL_WORKING_SET_END, dropped));

        MigrationSummary s =
                migrate("d1", MigrationOptions.newBuilder().setVerify(true).build(), e -> {});

        assertTrue(dropped.get() >= 0, "the final round had a working-set page to drop");
        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, s.getStatus(), s.toString());
        assertEquals(MigrationStep.MIGRATION_STEP_VERIFY, s.getFailedStep(), s.getError());
        assertTrue(s.getError().contains("destination RAM differs from the source"), s.getError());
        assertSourceRunningAndDestinationClean("d1");
    }

    @Test
    void aPageDroppedFromTheFinalRoundIsCaughtByTheTestGuestsOwnCheck() throws Exception {
        createRunning(smallWorkingSet("d2"));
        AtomicLong dropped = new AtomicLong(-2);
        pair.a.injectSenderFaults(Faults.dropAPageWrittenAfterTheLastRound(SMALL_WORKING_SET_END, dropped));

        MigrationSummary s = migrate("d2", MigrationOptions.newBuilder().build(), e -> {});

        // Nobody compared the two sides: the migration completes with the page missing.
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, s.getStatus(), s.getError());
        assertTrue(dropped.get() >= 0, "the final round had a working-set page to drop");
        String line = "STALE pfn=" + dropped.get() + " ";
        Timing.await("the guest on B to report page " + dropped.get() + " stale", Duration.ofSeconds(30), () -> {
            try {
                return console(runDir(pair.b, "d2")).contains(line);
            } catch (IOException e) {
                return false;
            }
        });
    }

    @Test
    void cancelDuringPrecopyLeavesTheSourceRunning() throws Exception {
        createRunning(guest("g2", 1000));
        boolean[] cancelled = {false};
        // Cancelled from the first progress report of round 0, which the bandwidth cap keeps long.
        MigrationSummary s = migrate("g2", slowRound0(), e -> {
            if (e.hasRound() && e.getRound().getPartial() && !cancelled[0]) {
                cancelled[0] = pair.clientA.cancelMigration("g2").getCancelled();
            }
        });
        assertTrue(cancelled[0]);
        assertEquals(MigrationPhase.MIGRATION_PHASE_CANCELLED, s.getStatus());
        assertEquals(MigrationStep.MIGRATION_STEP_PRECOPY, s.getFailedStep());
        assertSourceRunningAndDestinationClean("g2");
    }

    @Test
    void cancelAtTheSwitchoverResumesTheSource() throws Exception {
        createRunning(guest("g3", 1000));
        boolean[] cancelled = {false};
        MigrationSummary s = migrate("g3", MigrationOptions.newBuilder().build(), e -> {
            if (e.getPhase() == MigrationPhase.MIGRATION_PHASE_SWITCHOVER && !cancelled[0]) {
                cancelled[0] = pair.clientA.cancelMigration("g3").getCancelled();
            }
        });
        assertTrue(cancelled[0]);
        // The cancel races the switchover: it lands before the commit (cancelled, source resumed) or
        // after it (too late: completed). Either is correct; a paused or lost VM is not.
        if (s.getStatus() == MigrationPhase.MIGRATION_PHASE_CANCELLED) {
            assertSourceRunningAndDestinationClean("g3");
        } else {
            assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, s.getStatus(), s.getError());
            assertEquals(VmState.VM_STATE_RUNNING, pair.clientB.getVm("g3").getState());
        }
    }

    @Test
    void destinationQemuKilledMidMigrationLeavesTheSourceRunning() throws Exception {
        createRunning(guest("g4", 1000));
        MigrationSummary s = migrate("g4", slowRound0(), onFirstProgress(() -> {
            for (long pid : AgentPair.processesUsing(pair.ramDir(pair.b))) {
                ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
            }
        }));
        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, s.getStatus());
        assertTrue(s.getError().contains("hypervisor ended") || s.getError().contains("destination"), s.getError());
        assertSourceRunningAndDestinationClean("g4");
    }

    @Test
    void destinationAgentGoneMidMigrationLeavesTheSourceRunning() throws Exception {
        createRunning(guest("g5", 1000));
        MigrationSummary s = migrate("g5", slowRound0(), onFirstProgress(pair.b::close));
        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, s.getStatus());
        VmStatus src = pair.clientA.getVm("g5");
        assertEquals(VmState.VM_STATE_RUNNING, src.getState());
        long beat = src.getHeartbeat();
        Timing.await("the source guest keeps counting", Duration.ofSeconds(10), () -> heartbeat("g5") > beat);
        assertEquals(List.of(), AgentPair.processesUsing(pair.ramDir(pair.b)), "the dead agent's QEMU is gone");
        AgentCallException gone =
                org.junit.jupiter.api.Assertions.assertThrows(AgentCallException.class, () -> pair.clientB.listVms());
        assertTrue(gone.unreachable() || gone.code() == Status.Code.UNAVAILABLE);
    }

    @Test
    void sourceQemuDyingMidMigrationFailsItCleanlyAndTheDestinationDiscards() throws Exception {
        createRunning(guest("g7", 1000));
        long sourcePid = AgentPair.processesUsing(pair.ramDir(pair.a)).getFirst();
        MigrationSummary s = migrate(
                "g7",
                slowRound0(),
                onFirstProgress(() -> ProcessHandle.of(sourcePid).ifPresent(ProcessHandle::destroyForcibly)));
        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, s.getStatus());
        VmStatus src = pair.clientA.getVm("g7");
        assertEquals(VmState.VM_STATE_FAILED, src.getState(), "a guest whose QEMU died is failed, with the reason");
        assertTrue(src.getReason().contains("QEMU"), src.getReason());
        Timing.await("the destination discards", Duration.ofSeconds(15), () -> {
            try {
                return pair.clientB.listVms().isEmpty()
                        && pair.ramFiles(pair.b) == 0
                        && AgentPair.processesUsing(pair.ramDir(pair.b)).isEmpty();
            } catch (Exception e) {
                return false;
            }
        });
    }

    @Test
    void aFrozenSourceQemuFailsThePauseStepAndRunsOnOnceThawed() throws Exception {
        createRunning(guest("g8", 1000));
        long sourcePid = AgentPair.processesUsing(pair.ramDir(pair.a)).getFirst();
        // Frozen during pre-copy (PAGEMAP_SCAN still works on a stopped process): the first QMP
        // command of the migration, the pause at the switchover, then gets no answer.
        boolean[] frozen = {false};
        MigrationSummary s = migrate("g8", slowRound0(), e -> {
            if (e.hasRound() && e.getRound().getPartial() && !frozen[0]) {
                signal(sourcePid, "STOP");
                frozen[0] = true;
            }
        });
        signal(sourcePid, "CONT");
        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, s.getStatus());
        assertEquals(MigrationStep.MIGRATION_STEP_PAUSE, s.getFailedStep(), s.getError());
        assertTrue(s.getError().contains("QEMU"), s.getError());
        assertSourceRunningAndDestinationClean("g8");
    }

    private static void signal(long pid, String sig) {
        try {
            Process kill = new ProcessBuilder("kill", "-" + sig, Long.toString(pid)).start();
            if (!kill.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
                kill.destroyForcibly();
                throw new AssertionError("kill -" + sig + " " + pid + " did not return");
            }
        } catch (IOException | InterruptedException e) {
            throw new AssertionError(e);
        }
    }
}
