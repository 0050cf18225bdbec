package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import dev.ferry.testing.Timing;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * {@link CommitPhaseContract} on QEMU with the Ferry test guest (its heartbeat and its own stale-page
 * check on the console), plus the row only a real hypervisor has: the destination's QEMU dying
 * while Ready.
 */
class QemuCommitPhaseTest extends CommitPhaseContract {
    @Override
    AgentPair pair() throws Exception {
        QemuTestSupport.requireQemu();
        QemuTestSupport.requireDirtyTracking();
        return AgentPair.qemu();
    }

    @Override
    VmSpec guest(String name) {
        return VmSpec.newBuilder()
                .setSchemaVersion(1)
                .setName(name)
                .setMemoryBytes(64L << 20)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder()
                        .setDirtyRatePagesPerSec(1000)
                        .setWorkingSetBytes(8L << 20)
                        .setPattern(Pattern.PATTERN_RANDOM))
                .build();
    }

    @Override
    void assertNoStalePages(Agent agent, String vm) throws Exception {
        Path log = pair.root
                .resolve(agent.hostId() + "-data")
                .resolve("vms")
                .resolve(vm)
                .resolve("console.log");
        String console = Files.exists(log) ? Files.readString(log, StandardCharsets.US_ASCII) : "";
        assertFalse(console.contains("STALE"), "the guest on " + agent.hostId() + " found a stale page:\n" + console);
    }

    /**
     * Row "T's hypervisor dies while Ready": the destination QEMU is killed once it said Ready. The
     * commit decides, never a plain discard: not committed (no Commit arrived), so the destination
     * discards, and the source learns it and resumes.
     */
    @Test
    void aDestinationQemuKilledAtReadyLeavesTheVmRunningOnTheSourceOnly() throws Exception {
        createRunning("c5");
        pair.a.injectSenderFaults(Faults.atReady(lanes -> {
            List<Long> pids = AgentPair.processesUsing(pair.ramDir(pair.b));
            assertEquals(1, pids.size(), "one destination QEMU: " + pids);
            ProcessHandle.of(pids.getFirst()).ifPresent(ProcessHandle::destroyForcibly);
            Timing.await("B to discard at READY", Duration.ofSeconds(15), () -> {
                try {
                    return pair.clientB.listVms().isEmpty();
                } catch (Exception e) {
                    return false;
                }
            });
        }));

        MigrationSummary s = migrate("c5");

        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, s.getStatus(), s.toString());
        assertRunsOnlyOnTheSource("c5");
        assertTrue(AgentPair.processesUsing(pair.ramDir(pair.b)).isEmpty());
    }
}
