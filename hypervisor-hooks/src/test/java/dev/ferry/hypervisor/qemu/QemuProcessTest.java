package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.hypervisor.qemu.qmp.QmpClient;
import dev.ferry.hypervisor.qemu.qmp.QmpException;
import dev.ferry.testing.TestDirs;
import dev.ferry.testing.Timing;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** QemuProcess against real qemu-system-x86_64: lean 64 MiB guests, TCG unless /dev/kvm is usable. */
class QemuProcessTest {
    private static final Logger log = LoggerFactory.getLogger(QemuProcessTest.class);
    private Path dir;

    @BeforeEach
    void setUp() throws Exception {
        QemuTestSupport.requireQemu();
        dir = TestDirs.ramDir("qp");
    }

    @AfterEach
    void tearDown() throws Exception {
        TestDirs.deleteTree(dir);
    }

    private static QemuProcess start(QemuCommand c) throws Exception {
        return QemuTestSupport.start(c);
    }

    @Test
    void startsPausedAndRecordsVersionAccelAndStartupTime() throws Exception {
        QemuCommand c = QemuTestSupport.paused("v1", dir, 64).build();
        try (QemuProcess p = start(c)) {
            assertEquals(QemuProcess.State.RUNNING, p.state());
            assertTrue(p.version().major() >= 7, p.version().toString());
            Accel expected = Accel.detect().accel();
            assertEquals(expected, p.accel().accel());
            assertTrue(p.command().argv().contains(expected == Accel.KVM ? "kvm" : "tcg"));
            JsonNode status = p.qmp().execute("query-status", Duration.ofSeconds(5));
            assertEquals("prelaunch", status.path("status").asText());
            assertFalse(status.path("running").asBoolean());
            assertTrue(p.startupTime().toMillis() > 0);
            log.info(
                    "QEMU {} pid {} accel {} ({}), QMP ready after {} ms",
                    p.version(),
                    p.pid(),
                    p.accel().accel(),
                    p.accel().reason(),
                    p.startupTime().toMillis());
        }
    }

    @Test
    void runDirectoryAndSocketArePrivateToTheAgentsUser() throws Exception {
        QemuCommand c = QemuTestSupport.paused("priv", dir, 64).build();
        try (QemuProcess p = start(c)) {
            assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(c.runDir())));
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(c.qmpSocket())));
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(c.qemuLog())));
            assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(c.consoleLog())));
        }
        assertFalse(Files.exists(c.qmpSocket()), "close removes the socket");
    }

    @Test
    void closeKillsAStoppedQemuAsItIsWithoutLettingItRunAgain() throws Exception {
        QemuCommand c = QemuTestSupport.paused("frozen", dir, 64).build();
        QemuProcess p = start(c);
        List<QemuExit> exits = new CopyOnWriteArrayList<>();
        p.onExit(exits::add);
        long pid = p.pid();
        Linux.kill(pid, Linux.SIGSTOP);
        long t0 = System.nanoTime();
        p.close();
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "QEMU must be gone");
        assertEquals(1, exits.size(), "exit listeners have run when close returns");
        assertTrue(exits.getFirst().requested());
        // A stopped QEMU is a fenced guest (or one whose lease lapsed): continuing it so that it could
        // quit gracefully would let its vCPUs run guest code it may no longer run. SIGKILL, at once.
        assertEquals(9, exits.getFirst().signal(), exits.getFirst().reason());
        assertTrue(
                ms < Timing.scaled(Duration.ofSeconds(5)).toMillis(),
                "a stopped QEMU is killed without waiting for quit, not after " + ms + " ms");
        assertEquals(QemuProcess.State.CLOSED, p.state());
        log.info(
                "closing a SIGSTOPped QEMU took {} ms: {}", ms, exits.getFirst().reason());
    }

    @Test
    void closeOfAHealthyQemuUsesQuitNotSignals() throws Exception {
        QemuCommand c = QemuTestSupport.paused("quit", dir, 64).build();
        QemuProcess p = start(c);
        long t0 = System.nanoTime();
        p.close();
        long ms = (System.nanoTime() - t0) / 1_000_000;
        QemuExit e = p.exit().orElseThrow();
        assertTrue(e.requested());
        assertEquals(0, e.exitCode(), e.reason());
        assertTrue(e.reason().contains("host-qmp-quit"), e.reason());
        assertTrue(ms < Timing.seconds(2).toMillis(), "quit should end QEMU at once, took " + ms + " ms");
    }

    @Test
    void qemuKilledFromOutsideIsReportedOnceWithTheSignal() throws Exception {
        QemuCommand c = QemuTestSupport.paused("killed", dir, 64).build();
        try (QemuProcess p = start(c)) {
            List<QemuExit> exits = new CopyOnWriteArrayList<>();
            p.onExit(exits::add);
            Linux.kill(p.pid(), Linux.SIGKILL);
            Timing.await("exit reported", Duration.ofSeconds(5), () -> !exits.isEmpty());
            QemuExit e = exits.getFirst();
            assertFalse(e.requested());
            assertEquals(9, e.signal());
            assertTrue(e.reason().contains("QMP"), "the QMP EOF is part of the story: " + e.reason());
            assertEquals(QemuProcess.State.EXITED, p.state());
            QmpException q =
                    assertThrows(QmpException.class, () -> p.qmp().execute("query-status", Duration.ofSeconds(1)));
            assertEquals(QmpException.Kind.DISCONNECTED, q.kind());
            Thread.sleep(100);
            assertEquals(1, exits.size(), "told once, though both the process exit and the QMP EOF saw it");
            List<QemuExit> late = new CopyOnWriteArrayList<>();
            p.onExit(late::add);
            assertEquals(List.of(e), late, "a listener added after the end hears at once");
        }
    }

    @Test
    void aQuitNotAskedByFerryIsAnUnexpectedExitNamingTheShutdownEvent() throws Exception {
        QemuCommand c = QemuTestSupport.paused("outside", dir, 64).build();
        try (QemuProcess p = start(c)) {
            List<QemuExit> exits = new CopyOnWriteArrayList<>();
            p.onExit(exits::add);
            p.qmp().execute("quit", Duration.ofSeconds(5));
            Timing.await("exit reported", Duration.ofSeconds(5), () -> !exits.isEmpty());
            QemuExit e = exits.getFirst();
            assertFalse(e.requested());
            assertEquals(0, e.exitCode());
            assertTrue(e.reason().contains("SHUTDOWN") && e.reason().contains("host-qmp-quit"), e.reason());
        }
    }

    @Test
    void badArgumentsFailStartWithQemusOwnWordsAndLeaveNoProcess() throws Exception {
        QemuCommand c = QemuTestSupport.paused("bad", dir, 64)
                .extraArgs("-no-such-option")
                .build();
        QemuStartException e = assertThrows(QemuStartException.class, () -> start(c));
        assertEquals(QemuStartException.Step.WAIT_FOR_QMP_SOCKET, e.failedStep());
        assertTrue(e.getMessage().contains("no-such-option"), e.getMessage());
        assertTrue(e.getMessage().contains("exited with status 1"), e.getMessage());
        assertTrue(
                ProcessHandle.current()
                        .descendants()
                        .noneMatch(h -> h.info().command().orElse("").contains("qemu")),
                "no QEMU left behind");
    }

    @Test
    void aMissingBinaryFailsAtLaunch() throws Exception {
        QemuCommand c = QemuTestSupport.paused("nobin", dir, 64)
                .binary(Path.of("/nonexistent/qemu"))
                .build();
        QemuStartException e = assertThrows(QemuStartException.class, () -> start(c));
        assertEquals(QemuStartException.Step.LAUNCH, e.failedStep());
        assertTrue(e.getMessage().contains("/nonexistent/qemu"), e.getMessage());
    }

    @Test
    void disksAreAttachedAndReadOnlyIsHonoured() throws Exception {
        // cache=none is O_DIRECT, which tmpfs refuses: the images live on the build directory's disk.
        Path disks = Files.createDirectories(Path.of("target/qemu-test-disks").toAbsolutePath());
        Path rw = disks.resolve("rw-" + ProcessHandle.current().pid() + ".img");
        Path ro = disks.resolve("ro-" + ProcessHandle.current().pid() + ".img");
        try {
            for (Path d : List.of(rw, ro)) {
                try (var f = new java.io.RandomAccessFile(d.toFile(), "rw")) {
                    f.setLength(1 << 20);
                }
            }
            QemuCommand c = QemuTestSupport.paused("disks", dir, 64)
                    .disk(new QemuCommand.Disk(rw, QemuCommand.Disk.Format.RAW, false))
                    .disk(new QemuCommand.Disk(ro, QemuCommand.Disk.Format.RAW, true))
                    .build();
            try (QemuProcess p = start(c)) {
                JsonNode blocks = p.qmp().execute("query-block", Duration.ofSeconds(5));
                assertEquals(2, blocks.size(), blocks.toString());
                for (JsonNode b : blocks) {
                    JsonNode inserted = b.path("inserted");
                    boolean readOnly = inserted.path("ro").asBoolean();
                    String file = inserted.path("file").asText();
                    assertEquals(file.equals(ro.toString()), readOnly, b.toString());
                    assertTrue(inserted.path("cache").path("direct").asBoolean(), "cache=none means O_DIRECT: " + b);
                }
            }
        } finally {
            Files.deleteIfExists(rw);
            Files.deleteIfExists(ro);
        }
    }

    @Test
    void hookReportsTheRamMappingInsideQemu() throws Exception {
        QemuCommand c = QemuTestSupport.paused("hooked", dir, 64)
                .hookLibrary(QemuTestSupport.hookLibrary())
                .build();
        try (QemuProcess p = start(c)) {
            HookStatus s = p.awaitHookStatus(Duration.ofSeconds(1));
            assertEquals(HookStatus.Kind.OK, s.kind(), s.line());
            assertEquals(p.pid(), s.pid());
            assertEquals(64L << 20, s.length());
            assertEquals(0, s.offset());
            String maps = Files.readString(Path.of("/proc/" + p.pid() + "/maps"));
            assertTrue(
                    maps.contains(Long.toHexString(s.start()) + "-" + Long.toHexString(s.start() + s.length())),
                    "the reported range is QEMU's mapping of the RAM file");
        }
    }

    @Test
    void guestRamIsOneBlockAtOffsetZeroBackedByTheRamFile() throws Exception {
        QemuCommand c = QemuTestSupport.paused("blocks", dir, 128).build();
        try (QemuProcess p = start(c)) {
            String table = p.qmp()
                    .execute("human-monitor-command", "{\"command-line\": \"info ramblock\"}", Duration.ofSeconds(5))
                    .asText();
            log.info("RAM blocks of a 128 MiB pc guest:\n{}", table);
            // "ram0    4 KiB  0x0000000000000000 0x0000000008000000 0x0000000008000000": name, page size,
            // offset in QEMU's ram_addr space, used and total length.
            String ram0 = table.lines()
                    .map(String::strip)
                    .filter(l -> l.startsWith("ram0 "))
                    .findFirst()
                    .orElseThrow();
            String[] f = ram0.split("\\s+");
            assertEquals("0x0000000000000000", f[3], ram0);
            assertEquals(c.memoryBytes(), Long.decode(f[4]), ram0);
            assertEquals("4", f[1], "4 KiB pages on tmpfs: " + ram0);
            String maps = Files.readString(Path.of("/proc/" + p.pid() + "/maps"));
            assertEquals(
                    1,
                    maps.lines().filter(l -> l.endsWith(c.ramFile().toString())).count(),
                    "QEMU maps the RAM file once:\n" + maps);
        }
    }

    @Test
    void qmpClientIsNamedAndReady() throws Exception {
        QemuCommand c = QemuTestSupport.paused("named", dir, 64).build();
        try (QemuProcess p = start(c)) {
            assertEquals(QmpClient.State.READY, p.qmp().state());
            assertEquals(
                    "named",
                    p.qmp()
                            .execute("query-name", Duration.ofSeconds(5))
                            .path("name")
                            .asText());
            assertNotNull(p.qmp().greeting());
            assertTrue(Thread.getAllStackTraces().keySet().stream()
                    .anyMatch(t -> t.getName().equals("qmp-reader-named") && t.isDaemon()));
        }
    }
}
