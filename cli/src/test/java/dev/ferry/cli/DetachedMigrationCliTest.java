package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.testing.Timing;
import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A migration is the cluster's job, not the terminal's: `migrate --detach` returns its id at once,
 * `migrate watch` attaches from another "terminal" (another CLI run), `migrate list` shows it, and a
 * hang-up of the terminal that started it does not cancel it. Real local cluster (sim guests).
 */
class DetachedMigrationCliTest {
    @TempDir
    static Path tmp;

    static Path dir;

    @BeforeAll
    static void up() {
        dir = tmp.resolve("cluster");
        CliRun r = CliRun.of("cluster", "up", "--dir", dir.toString(), "--hosts", "2");
        assertEquals(0, r.exit(), r.err());
    }

    @AfterAll
    static void down() {
        if (Files.exists(dir.resolve("cluster.json"))) {
            assertEquals(
                    0, CliRun.of("cluster", "down", "--dir", dir.toString()).exit());
        }
    }

    private static CliRun ferry(String... args) {
        List<String> all = new ArrayList<>(List.of(args));
        all.addAll(List.of("--cluster", dir.toString()));
        return CliRun.of(all.toArray(String[]::new));
    }

    /**
     * A VM whose first round takes seconds at {@link #SLOW}: 64 MiB of incompressible pages, the
     * rest of the round never capped below it. The switchover comes at once after (10 s budget).
     */
    private static void busyVm(String name) {
        CliRun c = ferry(
                "vm",
                "create",
                name,
                "--memory",
                "128M",
                "--working-set",
                "64M",
                "--dirty-rate",
                "64M",
                "--pattern",
                "random",
                "--host",
                "host-1");
        assertEquals(0, c.exit(), c.err());
        // The guest fills its working set with random pages (about a second at 64 MiB/s).
        try {
            Thread.sleep(Timing.seconds(2).toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static final String SLOW = "8M";

    /** Whether this JVM ignores SIGHUP (started under nohup): bit 0 of SigIgn in /proc/self/status. */
    private static boolean hangUpIgnoredHere() throws java.io.IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("SigIgn:")) {
                return (Long.parseUnsignedLong(line.substring(7).trim(), 16) & 1) != 0;
            }
        }
        return false;
    }

    private static JsonNode migrations(String vm) throws Exception {
        CliRun l = ferry("migrate", "list", vm, "--json");
        assertEquals(0, l.exit(), l.err());
        return Json.MAPPER.readTree(l.out()).path("migrations");
    }

    @Test
    void aDetachedMigrationIsListedAndWatchedFromAnotherTerminalToItsEnd() throws Exception {
        busyVm("detached");
        CliRun d = ferry(
                "migrate",
                "detached",
                "--to",
                "host-2",
                "--max-bandwidth",
                SLOW,
                "--downtime-ms",
                "10000",
                "--detach",
                "--request-id",
                "op-detach-1");
        assertEquals(0, d.exit(), d.err());
        assertEquals("op-detach-1", d.out().strip());

        JsonNode running = migrations("detached");
        assertEquals("op-detach-1", running.path(0).path("id").asText(), running.toString());
        assertEquals("running", running.path(0).path("state").asText(), running.toString());

        CliRun w = ferry("migrate", "watch", "detached", "--json");
        assertEquals(0, w.exit(), w.out() + w.err());
        JsonNode outcome = Json.MAPPER.readTree(w.out());
        assertEquals("completed", outcome.path("status").asText(), w.out());

        JsonNode ended = migrations("detached");
        assertEquals("completed", ended.path(0).path("state").asText(), ended.toString());
        assertEquals("host-1", ended.path(0).path("source").asText(), ended.toString());
        assertEquals("host-2", ended.path(0).path("target").asText(), ended.toString());
        // Watching an ended migration prints its outcome.
        assertEquals(0, ferry("migrate", "watch", "op-detach-1").exit());
        assertEquals(0, ferry("vm", "delete", "detached").exit());
    }

    @Test
    void aHangUpOfTheTerminalThatStartedAMigrationDoesNotCancelIt() throws Exception {
        busyVm("hangup");
        List<String> cmd = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp",
                System.getProperty("java.class.path"),
                "dev.ferry.cli.Main",
                "migrate",
                "hangup",
                "--to",
                "host-2",
                "--max-bandwidth",
                SLOW,
                "--downtime-ms",
                "10000",
                "--request-id",
                "op-hangup-1",
                "--cluster",
                dir.toString()));
        File log = tmp.resolve("hangup.log").toFile();
        Process cli = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(log)
                .start();
        Timing.await("the migration runs", Duration.ofSeconds(30), () -> {
            try {
                JsonNode m = migrations("hangup");
                return m.size() > 0 && m.path(0).path("state").asText().equals("running");
            } catch (Exception e) {
                return false;
            }
        });
        Process kill = new ProcessBuilder("kill", "-HUP", Long.toString(cli.pid())).start();
        assertEquals(0, kill.waitFor());
        String said;
        if (hangUpIgnoredHere()) {
            // Started under nohup (the test JVM ignores SIGHUP, and so does the CLI it starts: an
            // ignored signal stays ignored across exec): the hang-up never reaches the CLI, which
            // migrates to the end. What remains to check is that the migration went on.
            assertTrue(cli.waitFor(Timing.scaled(Duration.ofSeconds(120)).toSeconds(), TimeUnit.SECONDS));
            said = Files.readString(log.toPath());
            assertEquals(0, cli.exitValue(), said);
        } else {
            assertTrue(cli.waitFor(Timing.scaled(Duration.ofSeconds(30)).toSeconds(), TimeUnit.SECONDS));
            said = Files.readString(log.toPath());
            assertEquals(129, cli.exitValue(), said);
            assertTrue(said.contains("hung up; the migration of hangup goes on"), said);
        }

        CliRun w = ferry("migrate", "watch", "op-hangup-1", "--json");
        assertEquals(0, w.exit(), w.out() + w.err() + said);
        assertEquals("completed", Json.MAPPER.readTree(w.out()).path("status").asText());
        JsonNode vms = Json.MAPPER.readTree(ferry("vm", "list", "--json").out()).path("vms");
        for (JsonNode v : vms) {
            if (v.path("name").asText().equals("hangup")) {
                assertEquals("host-2", v.path("host").asText(), vms.toString());
            }
        }
        assertEquals(0, ferry("vm", "delete", "hangup").exit());
        ClusterFile.read(dir); // the cluster is still whole for the next test
    }

    /**
     * At 256 KiB/s the first round alone would take over four minutes: the migration ends in time only
     * because `migrate set` lifted the cap while it ran.
     */
    @Test
    void aRunningMigrationsBandwidthCapIsLiftedMidwayAndItFinishes() throws Exception {
        busyVm("steered");
        CliRun notYet = ferry("migrate", "set", "steered", "--max-bandwidth", "1G");
        assertEquals(1, notYet.exit(), notYet.err());
        assertTrue(notYet.err().contains("not migrating"), notYet.err());

        CliRun d = ferry(
                "migrate",
                "steered",
                "--to",
                "host-2",
                "--max-bandwidth",
                "256K",
                "--downtime-ms",
                "10000",
                "--detach",
                "--request-id",
                "op-steer-1");
        assertEquals(0, d.exit(), d.err());
        CliRun set = ferry("migrate", "set", "steered", "--max-bandwidth", "unlimited", "--downtime-ms", "2000");
        assertEquals(0, set.exit(), set.err());
        assertTrue(set.out().contains("2000 ms downtime, no bandwidth cap"), set.out());

        java.util.concurrent.CompletableFuture<CliRun> watched = java.util.concurrent.CompletableFuture.supplyAsync(
                () -> ferry("migrate", "watch", "op-steer-1", "--json"));
        CliRun w = watched.get(Timing.scaled(Duration.ofSeconds(120)).toSeconds(), TimeUnit.SECONDS);
        assertEquals(0, w.exit(), w.out() + w.err());
        assertEquals("completed", Json.MAPPER.readTree(w.out()).path("status").asText(), w.out());
        assertEquals(0, ferry("vm", "delete", "steered").exit());
    }
}
