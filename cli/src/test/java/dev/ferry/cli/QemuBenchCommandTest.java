package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/** `ferry bench qemu` end to end against real QEMU: one small case, every default mode but the reference. */
class QemuBenchCommandTest {
    @Test
    void comparesFerryWithQemusOwnMigrationOnARealGuest() throws Exception {
        QemuTestSupport.requireQemu();
        QemuTestSupport.requireDirtyTracking();
        CliRun r = CliRun.of(
                "bench",
                "qemu",
                "--sizes",
                "256M",
                "--workloads",
                "ws32m",
                "--modes",
                "ferry,qemu-single,qemu-multifd",
                "--repeat",
                "1",
                "--settle",
                "2",
                "--observe",
                "2",
                "--ferry-warmup",
                "0",
                "--no-warm",
                "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode out = Json.MAPPER.readTree(r.out());
        JsonNode runs = out.get("runs");
        assertEquals(3, runs.size(), r.out());
        for (JsonNode run : runs) {
            String what = run.get("mode").asText() + ": " + run;
            assertEquals("completed", run.get("outcome").asText(), what);
            assertTrue(run.get("totalMs").asDouble() > 0, what);
            assertTrue(run.get("downtimeMs").asDouble() > 0, what);
            assertTrue(run.get("downtimeMs").asDouble() < run.get("totalMs").asDouble(), what);
            assertTrue(run.get("wireBytes").asLong() > 1_000_000, what);
            assertTrue(run.get("rounds").asLong() >= 2, what);
            assertTrue(run.get("guestAlive").asBoolean(), "the guest runs on the destination: " + what);
            if (run.get("mode").asText().equals("ferry")) {
                assertEquals(0, run.get("staleLines").asInt(), "Ferry loses no page: " + what);
                assertTrue(!run.get("detail").has("heartbeatWentBack"), "the guest's counters carry on: " + what);
                assertTrue(run.get("agentCpuSeconds").asDouble() > 0, what);
            } else {
                assertTrue(run.get("detail").get("qemuTotalTimeMs").asLong() > 0, what);
            }
        }
        JsonNode summary = out.get("summary");
        assertEquals(3, summary.size());
        assertTrue(summary.get(2).get("ferryOverThis").get("totalMs").asDouble() > 0, summary.toString());
        assertTrue(r.err().contains("256 MiB ws32m qemu-multifd run 1/1"), r.err());
        long me = ProcessHandle.current().pid();
        assertEquals(List.of(), processesNaming("/dev/shm/ferry-qbench-" + me), "QEMUs left running");
        assertTrue(!Files.exists(Path.of("/dev/shm/ferry-qbench-" + me)), "RAM files left behind");
    }

    private static List<Long> processesNaming(String path) {
        List<Long> pids = new ArrayList<>();
        ProcessHandle.allProcesses().forEach(p -> {
            try {
                String cmd = new String(
                        Files.readAllBytes(Path.of("/proc", Long.toString(p.pid()), "cmdline")),
                        StandardCharsets.UTF_8);
                if (p.isAlive() && cmd.contains("qemu-system") && cmd.contains(path)) {
                    pids.add(p.pid());
                }
            } catch (Exception e) {
                // gone
            }
        });
        return pids;
    }
}
