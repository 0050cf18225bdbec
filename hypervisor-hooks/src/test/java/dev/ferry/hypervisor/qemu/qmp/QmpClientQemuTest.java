package dev.ferry.hypervisor.qemu.qmp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.hypervisor.qemu.QemuCommand;
import dev.ferry.hypervisor.qemu.QemuProcess;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.testing.TestDirs;
import dev.ferry.testing.Timing;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The QMP client against a real QEMU's monitor. */
class QmpClientQemuTest {
    private static final Duration T = Duration.ofSeconds(5);
    private Path dir;
    private QemuProcess qemu;

    @BeforeEach
    void setUp() throws Exception {
        QemuTestSupport.requireQemu();
        dir = TestDirs.ramDir("qmp");
    }

    @AfterEach
    void tearDown() throws Exception {
        if (qemu != null) {
            qemu.close();
        }
        TestDirs.deleteTree(dir);
    }

    private QmpClient start(QemuCommand.Builder b) throws Exception {
        qemu = QemuTestSupport.start(b.build());
        return qemu.qmp();
    }

    @Test
    void qemuRefusalNamesTheCommandAndQemusErrorClassAndDescription() throws Exception {
        QmpClient qmp = start(QemuTestSupport.paused("err", dir, 64));
        QmpException notFound = assertThrows(QmpException.class, () -> qmp.execute("no-such-command", T));
        assertEquals(QmpException.Kind.ERROR, notFound.kind());
        assertEquals("CommandNotFound", notFound.errorClass());
        assertEquals("QMP no-such-command", notFound.step());
        assertTrue(
                notFound.getMessage().contains("no-such-command")
                        && notFound.getMessage().contains("CommandNotFound"),
                notFound.getMessage());
        QmpException bad = assertThrows(
                QmpException.class, () -> qmp.execute("migrate-set-parameters", "{\"downtime-limit\": \"fast\"}", T));
        assertEquals("GenericError", bad.errorClass());
        assertTrue(bad.description().contains("downtime-limit"), bad.description());
        // The connection is fine after a refusal.
        assertEquals("prelaunch", qmp.execute("query-status", T).path("status").asText());
    }

    @Test
    void concurrentCallersEachGetTheirOwnReply() throws Exception {
        QmpClient qmp = start(QemuTestSupport.paused("conc", dir, 64));
        ExecutorService pool = Executors.newFixedThreadPool(8);
        try {
            List<Future<?>> results = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                int thread = t;
                results.add(pool.submit(() -> {
                    for (int i = 0; i < 50; i++) {
                        switch ((thread + i) % 4) {
                            case 0 ->
                                assertEquals(
                                        "conc",
                                        qmp.execute("query-name", T)
                                                .path("name")
                                                .asText());
                            case 1 -> assertTrue(qmp.execute("query-status", T).has("running"));
                            case 2 -> assertTrue(qmp.execute("query-kvm", T).has("present"));
                            default -> {
                                // HMP echoes its own command line back into its error: a per-call fingerprint.
                                String marker = "t" + thread + "i" + i;
                                String out = qmp.execute(
                                                "human-monitor-command", "{\"command-line\": \"" + marker + "\"}", T)
                                        .asText();
                                assertTrue(out.contains(marker), out);
                            }
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : results) {
                f.get(Timing.seconds(60).toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void stopAndContAreAnnouncedByStopAndResumeEvents() throws Exception {
        QmpClient qmp = start(QemuTestSupport.paused("events", dir, 64));
        List<String> seen = new CopyOnWriteArrayList<>();
        qmp.addEventListener(e -> seen.add(e.name()));
        QmpClient.EventWaiter resume = qmp.expect("RESUME", null);
        qmp.execute("cont", T);
        QmpEvent r = resume.await(T);
        assertTrue(r.timestamp().getEpochSecond() > 0);
        QmpClient.EventWaiter stop = qmp.expect("STOP", null);
        qmp.execute("stop", T);
        stop.await(T);
        assertEquals("paused", qmp.execute("query-status", T).path("status").asText());
        Timing.await("listener saw both", Duration.ofSeconds(2), () -> seen.size() >= 2);
        assertEquals(List.of("RESUME", "STOP"), seen);
        // A second stop of a stopped VM is accepted and announces nothing.
        qmp.execute("stop", T);
        QmpException none =
                assertThrows(QmpException.class, () -> qmp.awaitEvent("STOP", null, Duration.ofMillis(300)));
        assertEquals(QmpException.Kind.TIMEOUT, none.kind());
        assertTrue(none.getMessage().contains("await STOP"), none.getMessage());
    }

    @Test
    void aCommandWithoutReplyTimesOutNamingTheCommand() throws Exception {
        QmpClient qmp = start(QemuTestSupport.paused("slow", dir, 64));
        Linux.kill(qemu.pid(), Linux.SIGSTOP);
        try {
            QmpException e =
                    assertThrows(QmpException.class, () -> qmp.execute("query-status", Duration.ofMillis(300)));
            assertEquals(QmpException.Kind.TIMEOUT, e.kind());
            assertTrue(e.getMessage().contains("query-status") && e.getMessage().contains("300 ms"), e.getMessage());
        } finally {
            Linux.kill(qemu.pid(), Linux.SIGCONT);
        }
        // The late reply to the abandoned command is dropped; the next command gets its own.
        assertEquals("slow", qmp.execute("query-name", T).path("name").asText());
    }

    @Test
    void qemuDyingFailsEveryPendingCommandAtOnceAndTellsTheDeathListenerOnce() throws Exception {
        QmpClient qmp = start(QemuTestSupport.paused("dies", dir, 64));
        List<String> deaths = new CopyOnWriteArrayList<>();
        qmp.onDeath(deaths::add);
        QmpClient.EventWaiter never = qmp.expect("RESUME", null);
        Linux.kill(qemu.pid(), Linux.SIGSTOP);
        List<CompletableFuture<QmpException>> pending = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            pending.add(CompletableFuture.supplyAsync(() -> {
                try {
                    qmp.execute("query-status", Duration.ofSeconds(30));
                    return null;
                } catch (QmpException e) {
                    return e;
                }
            }));
        }
        Thread.sleep(200);
        long t0 = System.nanoTime();
        Linux.kill(qemu.pid(), Linux.SIGKILL);
        for (CompletableFuture<QmpException> f : pending) {
            QmpException e = f.get(Timing.seconds(30).toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
            assertEquals(QmpException.Kind.DISCONNECTED, e.kind(), String.valueOf(e));
            assertTrue(e.getMessage().contains("QEMU closed the QMP connection"), e.getMessage());
        }
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(
                ms < Timing.seconds(2).toMillis(),
                "pending commands must fail when QEMU dies, not at their timeout; took " + ms + " ms");
        assertEquals(
                QmpException.Kind.DISCONNECTED,
                assertThrows(QmpException.class, () -> never.await(T)).kind());
        Timing.await("death reported", Duration.ofSeconds(2), () -> !deaths.isEmpty());
        assertEquals(QmpClient.State.DEAD, qmp.state());
        QmpException after = assertThrows(QmpException.class, () -> qmp.execute("query-status", T));
        assertEquals(QmpException.Kind.DISCONNECTED, after.kind());
        Thread.sleep(100);
        assertEquals(1, deaths.size(), deaths.toString());
    }

    @Test
    void closingTheClientFailsWaitersAsClosedAndIsNoDeath() throws Exception {
        QmpClient qmp = start(QemuTestSupport.paused("closing", dir, 64));
        List<String> deaths = new CopyOnWriteArrayList<>();
        qmp.onDeath(deaths::add);
        QmpClient.EventWaiter w = qmp.expect("RESUME", null);
        qmp.close();
        assertEquals(
                QmpException.Kind.CLOSED,
                assertThrows(QmpException.class, () -> w.await(T)).kind());
        assertEquals(
                QmpException.Kind.CLOSED,
                assertThrows(QmpException.class, () -> qmp.execute("stop", T)).kind());
        Thread.sleep(100);
        assertTrue(deaths.isEmpty(), deaths.toString());
    }

    @Test
    void queryMigrateAnswersBeforeAnyMigration() throws Exception {
        QmpClient qmp = start(QemuTestSupport.paused("qm", dir, 64));
        JsonNode m = qmp.execute("query-migrate", T);
        assertTrue(m.isObject() && !m.has("status"), "no migration yet: " + m);
    }
}
