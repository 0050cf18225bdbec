package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.testing.Timing;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The ferry CLI with the qemu driver: agents are processes, guests are real QEMUs. */
class QemuClusterCliTest {
    @TempDir
    Path tmp;

    Path dir;

    @BeforeEach
    void up() {
        QemuTestSupport.requireQemu();
        QemuTestSupport.requireDirtyTracking();
        dir = tmp.resolve("cluster");
        CliRun r = CliRun.of("cluster", "up", "--dir", dir.toString(), "--hosts", "2", "--driver", "qemu");
        assertEquals(0, r.exit(), r.err());
    }

    @AfterEach
    void down() {
        if (Files.exists(dir.resolve("cluster.json"))) {
            ClusterFile f = ClusterFile.read(dir);
            assertEquals(
                    0, CliRun.of("cluster", "down", "--dir", dir.toString()).exit());
            for (ClusterFile.Host h : f.hosts()) {
                assertEquals(List.of(), qemusUsing(Path.of(h.ramDir())), "QEMU of " + h.id() + " left running");
            }
        }
    }

    private CliRun ferry(String... args) {
        List<String> all = new ArrayList<>(List.of(args));
        all.addAll(List.of("--cluster", dir.toString()));
        return CliRun.of(all.toArray(String[]::new));
    }

    static List<Long> qemusUsing(Path dir) {
        List<Long> pids = new ArrayList<>();
        ProcessHandle.allProcesses().forEach(p -> {
            List<String> cmd = cmdline(p.pid());
            if (p.isAlive()
                    && cmd.stream().anyMatch(a -> a.contains("qemu-system"))
                    && cmd.stream().anyMatch(a -> a.contains(dir.toString()))) {
                pids.add(p.pid());
            }
        });
        return pids;
    }

    private static List<String> cmdline(long pid) {
        try {
            return List.of(new String(
                            Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline")), StandardCharsets.UTF_8)
                    .split("\u0000"));
        } catch (Exception e) {
            return List.of();
        }
    }

    @Test
    void aQemuGuestMovesLiveThroughTheCliAndAKilledAgentsQemuStopsUnderItsLease() throws Exception {
        assertEquals(
                0,
                ferry(
                                "vm",
                                "create",
                                "g",
                                "--memory",
                                "128M",
                                "--dirty-rate",
                                "4M",
                                "--working-set",
                                "32M",
                                "--pattern",
                                "random",
                                "--host",
                                "host-1")
                        .exit());
        Timing.await("guest heartbeat", Duration.ofSeconds(20), () -> heartbeat("g") >= 2);
        CliRun m = ferry("migrate", "g", "--to", "host-2", "--verify", "--json");
        assertEquals(0, m.exit(), m.err() + m.out());
        JsonNode s = Json.MAPPER.readTree(m.out());
        assertEquals("completed", s.get("status").asText());
        assertTrue(s.get("memoryVerified").asBoolean());
        JsonNode g = Json.MAPPER.readTree(ferry("vm", "show", "g", "--json").out());
        assertEquals("host-2", g.get("host").asText());
        JsonNode hosts =
                Json.MAPPER.readTree(ferry("host", "list", "--json").out()).get("hosts");
        for (JsonNode h : hosts) {
            assertEquals("qemu", h.get("driver").asText(), h.toString());
        }

        // Move it back, and kill -9 the destination agent half way: its QEMU outlives it (a restarted
        // agent would clean it up), but stops by itself when its lease ends, nobody renewing it.
        ClusterFile f = ClusterFile.read(dir);
        ProcessHandle host1 = LocalCluster.alive(f.host("host-1")).orElseThrow();
        Path host1Ram = Path.of(f.host("host-1").ramDir());
        CompletableFuture<CliRun> back = CompletableFuture.supplyAsync(
                () -> ferry("migrate", "g", "--to", "host-1", "--max-bandwidth", "4M", "--json"));
        Timing.await(
                "the destination QEMU",
                Duration.ofSeconds(20),
                () -> !qemusUsing(host1Ram).isEmpty());
        host1.destroyForcibly();
        CliRun failed = back.get(Timing.seconds(120).toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
        assertEquals(1, failed.exit(), failed.out());
        List<Long> orphans = qemusUsing(host1Ram);
        Timing.await(
                "the killed agent's QEMU stopped by its lease",
                Duration.ofSeconds(20),
                () -> orphans.stream()
                        .allMatch(pid -> FenceBelowTheAgentQemuTest.state(pid) == 'T'
                                || ProcessHandle.of(pid).isEmpty()));
        JsonNode still = Json.MAPPER.readTree(ferry("vm", "show", "g", "--json").out());
        assertEquals("host-2", still.get("host").asText());
        assertEquals("running", still.get("state").asText());
        long beat = still.get("heartbeat").asLong();
        Timing.await("the guest keeps counting on host-2", Duration.ofSeconds(10), () -> heartbeat("g") > beat);
    }

    private long heartbeat(String vm) {
        try {
            return Json.MAPPER
                    .readTree(ferry("vm", "show", vm, "--json").out())
                    .get("heartbeat")
                    .asLong();
        } catch (Exception e) {
            return -1;
        }
    }
}
