package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.testing.Timing;
import java.io.File;
import java.nio.charset.StandardCharsets;
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
import org.w3c.dom.Document;

/**
 * `ferry report`: after a detached migration whose bandwidth was raised mid-way (`migrate set`),
 * watched from another process, the report shows every round, the round the limit changed in and
 * the pause by step, as text, JSON and an HTML page with one chart point per round, which headless
 * Chromium renders; an unknown migration is a clear error. A real local
 * cluster (coordinator, ZooKeeper, agents over gRPC; sim guests).
 */
class MigrationReportCliTest {
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

    static CliRun ferry(String... args) {
        List<String> all = new ArrayList<>(List.of(args));
        all.addAll(List.of("--cluster", dir.toString()));
        return CliRun.of(all.toArray(String[]::new));
    }

    static Process ferryProcess(File log, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp",
                System.getProperty("java.class.path"),
                "dev.ferry.cli.Main"));
        cmd.addAll(List.of(args));
        cmd.addAll(List.of("--cluster", dir.toString()));
        return new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(log)
                .start();
    }

    @Test
    void aReportAfterAMigrationShowsItsRoundsTheLimitChangeAndThePauseAsTextJsonAndCharts() throws Exception {
        CliRun c = ferry(
                "vm",
                "create",
                "reported",
                "--memory",
                "64M",
                "--working-set",
                "32M",
                "--dirty-rate",
                "4M",
                "--pattern",
                "random",
                "--host",
                "host-1");
        assertEquals(0, c.exit(), c.err());
        Thread.sleep(Timing.seconds(2).toMillis()); // the guest fills its working set
        // At 1 MiB/s the first round alone would take a minute: it ends in time only because the
        // cap is lifted once the watcher has attached.
        CliRun d = ferry(
                "migrate",
                "reported",
                "--to",
                "host-2",
                "--max-bandwidth",
                "1M",
                "--downtime-ms",
                "300",
                "--detach",
                "--request-id",
                "op-report-1");
        assertEquals(0, d.exit(), d.err());
        File watchLog = tmp.resolve("watch.log").toFile();
        Process watch = ferryProcess(watchLog, "migrate", "watch", "op-report-1");
        Timing.await("the watcher attached", Duration.ofSeconds(60), () -> {
            try {
                return Files.readString(watchLog.toPath()).contains("ferry: watching migration op-report-1");
            } catch (java.io.IOException e) {
                return false;
            }
        });
        CliRun set = ferry("migrate", "set", "reported", "--max-bandwidth", "256M");
        assertEquals(0, set.exit(), set.out() + set.err());
        assertTrue(watch.waitFor(Timing.seconds(90).toMillis(), TimeUnit.MILLISECONDS), "watch ended");
        String watched = Files.readString(watchLog.toPath());
        assertEquals(0, watch.exitValue(), watched);
        // The watcher in the other terminal saw the change among the rounds, as the report words it.
        assertTrue(watched.contains("limits changed in round 0"), watched);
        assertTrue(watched.contains("bandwidth 256 MiB/s"), watched);

        CliRun text = ferry("report", "op-report-1");
        assertEquals(0, text.exit(), text.err());
        assertTrue(text.out().contains("migration op-report-1 of reported: host-1 -> host-2, completed"), text.out());
        assertTrue(text.out().contains("ROUND"), text.out());
        assertTrue(text.out().contains("limits changed in round"), text.out());
        assertTrue(text.out().contains("bandwidth 256 MiB/s"), text.out());
        assertTrue(
                text.out()
                        .matches("(?s).*pause \\d+ ms: final pages \\d+ ms, device state \\d+ ms, commit \\d+ ms, "
                                + "resume \\d+ ms.*"),
                text.out());

        CliRun js = ferry("report", "reported", "--json");
        assertEquals(0, js.exit(), js.err());
        JsonNode j = Json.MAPPER.readTree(js.out());
        assertEquals("op-report-1", j.path("id").asText());
        assertEquals("the cluster (ZooKeeper)", j.path("keptBy").asText());
        assertEquals(
                1L << 20, j.path("settings").path("maxBandwidthBytesPerSec").asLong());
        JsonNode rounds = j.path("rounds");
        int n = rounds.size();
        assertTrue(n >= 2, js.out());
        assertEquals(n, j.path("summary").path("rounds").asInt(), js.out());
        assertEquals(1, j.path("limitChanges").size(), js.out());
        assertEquals(
                256L << 20,
                j.path("limitChanges").path(0).path("maxBandwidthBytesPerSec").asLong());
        int changedIn = j.path("limitChanges").path(0).path("round").asInt();
        for (JsonNode r : rounds) {
            // The limit in force at each round's end: the new one from the round it changed in.
            long want = r.path("round").asInt() >= changedIn ? 256L << 20 : 1L << 20;
            assertEquals(want, r.path("maxBandwidthLimitBytesPerSec").asLong(), r.toString());
        }
        assertTrue(j.path("pauseSteps").has("final pages"), js.out());

        Path html = tmp.resolve("report.html");
        CliRun h = ferry("report", "op-report-1", "--html", html.toString());
        assertEquals(0, h.exit(), h.err());
        assertTrue(h.out().contains("report written to " + html), h.out());
        String page = Files.readString(html, StandardCharsets.UTF_8);
        Document doc = MigrationReportHtmlTest.parse(page);
        assertEquals(2 * n, MigrationReportHtmlTest.count(doc, "//*[@id='chart-rates']/*[@class='pt']"));
        assertEquals(n, MigrationReportHtmlTest.count(doc, "//*[@id='chart-remaining']/*[@class='pt']"));
        assertEquals(n, MigrationReportHtmlTest.count(doc, "//*[@id='chart-pages']/*[@class='pt']"));
        assertTrue(MigrationReportHtmlTest.count(doc, "//*[@id='chart-pause']/*[@class='pt']") >= 4, page);
        assertEquals(1, MigrationReportHtmlTest.count(doc, "//*[@id='chart-rates']/*[@class='limit-change']"));
        ChromiumCheck.assertRenders(html, n, tmp);
    }

    @Test
    void anUnknownMigrationIsAClearErrorWithExitOne() {
        CliRun r = ferry("report", "no-such-thing");
        assertEquals(1, r.exit(), r.out() + r.err());
        assertTrue(r.err().contains("no migration of a VM named no-such-thing or with that id"), r.err());
        assertFalse(r.out().contains("ROUND"));
    }
}
