package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.hypervisor.qemu.QemuProcess;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.testing.Timing;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The fence below the agent, end to end with real QEMU guests and agents as processes: a frozen
 * agent's guest stops by itself before the cluster runs the VM elsewhere (issue 9: "a frozen agent
 * runs a VM twice"), and an agent restarted for an upgrade keeps its guests running. Progress is
 * read from outside the agents: the test guest's heartbeat lines on each copy's console.
 */
class FenceBelowTheAgentQemuTest {
    private static final Pattern BEAT = Pattern.compile("FERRY-GUEST hb=(\\d+)");
    /** Short, so the VM moves quickly once host-1's agent is frozen. */
    private static final long SESSION_MS = 4000;
    /**
     * The default session timeout: a restarted agent must resume its session and renew the leases
     * within 5/6 of it, and a JVM start on a loaded 2-core machine can take several seconds.
     */
    private static final long UPGRADE_SESSION_MS = 10_000;

    @TempDir
    Path tmp;

    Path dir;

    @BeforeEach
    void up(org.junit.jupiter.api.TestInfo test) {
        long session =
                test.getTestMethod().orElseThrow().getName().contains("Upgrade") ? UPGRADE_SESSION_MS : SESSION_MS;
        QemuTestSupport.requireQemu();
        QemuTestSupport.requireDirtyTracking();
        dir = tmp.resolve("cluster");
        CliRun r = CliRun.of(
                "cluster",
                "up",
                "--dir",
                dir.toString(),
                "--hosts",
                "2",
                "--driver",
                "qemu",
                "--session-timeout-ms",
                Long.toString(session));
        assertEquals(0, r.exit(), r.err());
    }

    @AfterEach
    void down() {
        if (Files.exists(dir.resolve("cluster.json"))) {
            ClusterFile f = ClusterFile.read(dir);
            for (ClusterFile.Host h : f.hosts()) {
                LocalCluster.alive(h).ifPresent(p -> {
                    try {
                        Linux.kill(p.pid(), Linux.SIGCONT);
                    } catch (Exception e) {
                        // gone
                    }
                });
            }
            assertEquals(
                    0, CliRun.of("cluster", "down", "--dir", dir.toString()).exit());
            for (ClusterFile.Host h : f.hosts()) {
                assertEquals(
                        List.of(),
                        QemuClusterCliTest.qemusUsing(Path.of(h.ramDir())),
                        "QEMU of " + h.id() + " left running");
            }
        }
    }

    private CliRun ferry(String... args) {
        List<String> all = new ArrayList<>(List.of(args));
        all.addAll(List.of("--cluster", dir.toString()));
        return CliRun.of(all.toArray(String[]::new));
    }

    private JsonNode vm(String name) {
        try {
            return Json.MAPPER.readTree(ferry("vm", "show", name, "--json").out());
        } catch (Exception e) {
            return Json.MAPPER.createObjectNode();
        }
    }

    private void createOn(String name, String host) {
        CliRun c = ferry(
                "vm", "create", name, "--memory", "64M", "--dirty-rate", "1M", "--working-set", "8M", "--host", host);
        assertEquals(0, c.exit(), c.err() + c.out());
    }

    private Path console(String host, String vm) {
        return Path.of(ClusterFile.read(dir).host(host).dataDir(), "vms", vm, "console.log");
    }

    private Optional<ProcessHandle> qemu(String host, String vm) {
        return QemuProcess.recorded(Path.of(ClusterFile.read(dir).host(host).dataDir(), "vms", vm, "qemu.pid"));
    }

    /** The last heartbeat a copy printed on its console, or -1: evidence from outside the agents. */
    static long beat(Path console) {
        try {
            byte[] all = Files.readAllBytes(console);
            String tail = new String(
                    all, Math.max(0, all.length - 4096), Math.min(all.length, 4096), StandardCharsets.ISO_8859_1);
            Matcher m = BEAT.matcher(tail);
            long last = -1;
            while (m.find()) {
                last = Long.parseLong(m.group(1));
            }
            return last;
        } catch (Exception e) {
            return -1;
        }
    }

    /** One sample of both copies' heartbeats on this machine's monotonic clock. */
    record Sample(long nanos, long first, long second) {}

    @Test
    void aFrozenAgentsGuestStopsBeforeTheVmRunsElsewhere() throws Exception {
        createOn("g", "host-1");
        Path c1 = console("host-1", "g");
        Path c2 = console("host-2", "g");
        Timing.await("the guest's heartbeat on host-1", Duration.ofSeconds(30), () -> beat(c1) >= 3);
        ProcessHandle agent1 =
                LocalCluster.alive(ClusterFile.read(dir).host("host-1")).orElseThrow();
        long qemu1 = qemu("host-1", "g").orElseThrow().pid();

        // Sample both copies from outside, every 50 ms, while host-1's agent is frozen.
        List<Sample> samples = new CopyOnWriteArrayList<>();
        Thread sampler = Thread.ofPlatform().daemon().start(() -> {
            while (!Thread.currentThread().isInterrupted()) {
                samples.add(new Sample(System.nanoTime(), beat(c1), beat(c2)));
                try {
                    Thread.sleep(50);
                } catch (InterruptedException e) {
                    return;
                }
            }
        });
        long frozenAt = System.nanoTime();
        Linux.kill(agent1.pid(), Linux.SIGSTOP);
        try {
            Timing.await("the VM restarted on host-2 and counting there", Duration.ofSeconds(60), () -> beat(c2) >= 3);
            assertEquals('T', state(qemu1), "host-1's QEMU must be stopped by its lease, the agent being frozen");
        } finally {
            Linux.kill(agent1.pid(), Linux.SIGCONT);
        }
        Thread.sleep(500);
        sampler.interrupt();
        sampler.join(5000);

        // I1 from the consoles: no interval in which both copies counted.
        long lastFirst = -1;
        long firstStoppedAt = Long.MAX_VALUE;
        long secondStartedAt = Long.MAX_VALUE;
        Sample prev = null;
        for (Sample s : samples) {
            if (prev != null) {
                if (s.first() > prev.first()) {
                    lastFirst = s.nanos();
                }
                if (s.second() > prev.second() && secondStartedAt == Long.MAX_VALUE) {
                    secondStartedAt = prev.nanos();
                }
            }
            prev = s;
        }
        firstStoppedAt = lastFirst;
        assertTrue(secondStartedAt != Long.MAX_VALUE, "the copy on host-2 never counted");
        assertTrue(
                firstStoppedAt < secondStartedAt,
                "host-1's copy counted at " + (firstStoppedAt - frozenAt) / 1_000_000
                        + " ms after the freeze, host-2's began at " + (secondStartedAt - frozenAt) / 1_000_000
                        + " ms");

        // Thawed, host-1's agent learns the VM is host-2's now and kills its frozen copy.
        Timing.await(
                "host-1's frozen copy killed once its agent is back",
                Duration.ofSeconds(40),
                () -> ProcessHandle.of(qemu1).map(p -> !p.isAlive()).orElse(true));
        JsonNode g = vm("g");
        assertEquals("host-2", g.get("host").asText(), g.toString());
        assertEquals("running", g.get("state").asText(), g.toString());
        assertTrue(g.get("epoch").asLong() >= 2, g.toString());
    }

    @Test
    void anAgentRestartedForAnUpgradeKeepsItsGuestRunning() throws Exception {
        createOn("u", "host-1");
        Path c1 = console("host-1", "u");
        Timing.await("the guest's heartbeat", Duration.ofSeconds(30), () -> beat(c1) >= 3);
        long epoch = vm("u").get("epoch").asLong();
        long qemu1 = qemu("host-1", "u").orElseThrow().pid();
        ProcessHandle agent1 =
                LocalCluster.alive(ClusterFile.read(dir).host("host-1")).orElseThrow();

        // SIGTERM, as systemd stops a service for an upgrade: the agent leaves its guest running.
        agent1.destroy();
        assertTrue(agent1.onExit().get(30, java.util.concurrent.TimeUnit.SECONDS) != null);
        long atExit = beat(c1);
        Timing.await("the guest counts on without its agent", Duration.ofSeconds(5), () -> beat(c1) > atExit);

        LocalCluster.restartAgent(dir, "host-1", Timing.seconds(60));
        Timing.await(
                "the new agent reports the guest it adopted",
                Duration.ofSeconds(30),
                () -> "running".equals(vm("u").path("state").asText())
                        && vm("u").path("heartbeat").asLong() > atExit);
        JsonNode u = vm("u");
        assertEquals("host-1", u.get("host").asText(), u.toString());
        assertEquals(epoch, u.get("epoch").asLong(), "adopted in place, not restarted: " + u);
        assertEquals(qemu1, qemu("host-1", "u").orElseThrow().pid(), "the same QEMU process");
        long now = beat(c1);
        Timing.await("the adopted guest keeps counting", Duration.ofSeconds(5), () -> beat(c1) > now);
        assertFalse(state(qemu1) == 'T', "never stopped: the new agent renewed its lease in time");
    }

    static char state(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
            return stat.charAt(stat.lastIndexOf(')') + 2);
        } catch (Exception e) {
            return '?';
        }
    }
}
