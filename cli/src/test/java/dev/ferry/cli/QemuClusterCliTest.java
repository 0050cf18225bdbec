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

    /**
     * Issue 13's console: a follower attached on host-1 reads on across a live migration to host-2
     * without reattaching by hand, every heartbeat line once and in order; the history read on
     * host-2 afterwards still holds host-1's lines (the source's tail moved with the VM); and input
     * reaches the guest (the test guest echoes its COM1 input).
     */
    @Test
    void theConsoleFollowsTheGuestAcrossAMigrationAndItsHistoryKeepsTheSourcesLines() throws Exception {
        assertEquals(
                0,
                ferry("vm", "create", "c", "--memory", "64M", "--dirty-rate", "1M", "--host", "host-1")
                        .exit());
        StringBuffer out = new StringBuffer();
        List<String> notes = new java.util.concurrent.CopyOnWriteArrayList<>();
        ClusterFile f = ClusterFile.read(dir);
        try (dev.ferry.cluster.client.CoordinatorClient client = ClusterOption.client(f)) {
            dev.ferry.cluster.client.ConsoleFollower follower = new dev.ferry.cluster.client.ConsoleFollower(
                    client, "c", -1, true, false, new dev.ferry.cluster.client.ConsoleFollower.Sink() {
                        @Override
                        public void output(byte[] data) {
                            out.append(new String(data, StandardCharsets.ISO_8859_1));
                        }

                        @Override
                        public void note(String line) {
                            notes.add(line + " @" + out.length());
                        }
                    });
            Thread t = Thread.ofPlatform().start(() -> {
                try {
                    follower.run();
                } catch (Exception e) {
                    notes.add("follower failed: " + e);
                }
            });
            try {
                Timing.await(
                        "heartbeats from host-1",
                        Duration.ofSeconds(30),
                        () -> beats(out.toString()).size() >= 3);
                long lastOnSource = beats(out.toString()).getLast();
                CliRun m = ferry("migrate", "c", "--to", "host-2", "--json");
                assertEquals(0, m.exit(), m.err() + m.out());
                Timing.await(
                        "the follower on host-2",
                        Duration.ofSeconds(30),
                        () -> notes.stream().anyMatch(n -> n.startsWith("-- now on host-2")));
                Timing.await(
                        "heartbeats from host-2",
                        Duration.ofSeconds(30),
                        () -> beats(out.toString()).getLast() > lastOnSource + 3);
                // Every line once, in order, across the move: no gap, no repeat.
                List<Long> seen = beats(out.toString());
                for (int i = 1; i < seen.size(); i++) {
                    assertEquals(seen.get(i - 1) + 1, seen.get(i), "heartbeats " + seen + "; notes " + notes);
                }
                assertTrue(out.toString().startsWith("FERRY-GUEST start"), out.toString());

                // Input: through the coordinator and host-2's agent to the guest, which echoes it.
                Timing.await(
                        "input accepted",
                        Duration.ofSeconds(10),
                        () -> follower.input("ferry-console-input\n".getBytes(StandardCharsets.US_ASCII)));
                Timing.await(
                        "the guest's echo",
                        Duration.ofSeconds(20),
                        () -> out.toString().contains("ferry-console-input\n"));
            } finally {
                follower.close();
                t.join(10_000);
            }
        }
        // The history, read from host-2 alone, starts with host-1's lines.
        CliRun h = ferry("vm", "console", "c", "--history", "--tail", "all");
        assertEquals(0, h.exit(), h.err());
        assertTrue(h.out().startsWith("FERRY-GUEST start"), h.out());
        assertTrue(h.out().contains("ferry-console-input\n"), h.out());
        CliRun last = ferry("vm", "console", "c", "--history", "--tail", "2");
        long lines = last.out().lines().count();
        assertTrue(lines == 2 || lines == 3, "two lines and what the guest is printing: " + last.out());
    }

    private static List<Long> beats(String console) {
        List<Long> hb = new ArrayList<>();
        java.util.regex.Matcher m =
                java.util.regex.Pattern.compile("FERRY-GUEST hb=(\\d+) ").matcher(console);
        while (m.find()) {
            hb.add(Long.parseLong(m.group(1)));
        }
        return hb;
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
