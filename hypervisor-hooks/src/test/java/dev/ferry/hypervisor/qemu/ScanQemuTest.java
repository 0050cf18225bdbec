package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.hypervisor.memory.RamFile;
import dev.ferry.hypervisor.qemu.dirty.PagemapScanner;
import dev.ferry.hypervisor.qemu.qmp.QmpClient;
import dev.ferry.testing.TestDirs;
import dev.ferry.testing.Timing;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * PagemapScanner over a real QEMU's guest RAM, write-protected by the LD_PRELOAD hook. Writes are
 * made inside QEMU, through its own mapping: by QEMU's gdbstub (exact, guest-free) or by the
 * test guest running on the vCPU.
 */
class ScanQemuTest {
    private static final Logger log = LoggerFactory.getLogger(ScanQemuTest.class);
    private static final Duration T = Duration.ofSeconds(5);
    private static final int PAGE = 4096;
    private Path dir;

    @BeforeEach
    void setUp() throws Exception {
        QemuTestSupport.requireNative();
        QemuTestSupport.requireDirtyTracking();
        dir = TestDirs.ramDir("scanq");
    }

    @AfterEach
    void tearDown() throws Exception {
        TestDirs.deleteTree(dir);
    }

    private static List<Long> pages(PageBitmap b) {
        List<Long> out = new ArrayList<>();
        for (long p = b.nextSetBit(0); p >= 0; p = b.nextSetBit(p + 1)) {
            out.add(p);
        }
        return out;
    }

    private static PagemapScanner scanner(QemuProcess q) throws Exception {
        HookStatus s = q.awaitHookStatus(T);
        assertEquals(HookStatus.Kind.OK, s.kind(), s.describe());
        assertEquals(0, s.offset());
        assertEquals(q.command().memoryBytes(), s.length());
        return PagemapScanner.open(q.pid(), s.start(), s.length());
    }

    @Test
    void pagesQemuWritesAreExactlyThePagesReportedAndRearmed() throws Exception {
        QemuCommand c = QemuTestSupport.paused("exact", dir, 64)
                .hookLibrary(QemuTestSupport.hookLibrary())
                .build();
        long pageCount = c.memoryBytes() / PAGE;
        try (QemuProcess q = QemuTestSupport.start(c);
                PagemapScanner scanner = scanner(q);
                GdbStub gdb = GdbStub.attach(q, c.runDir().resolve("gdb.sock"))) {
            PageBitmap b = new PageBitmap(pageCount);
            PagemapScanner.ScanStats boot = scanner.collect(b, true);
            log.info("pages QEMU wrote while setting up a paused 64 MiB pc machine: {} ({})", boot.pages(), ranges(b));
            b.clear();
            scanner.collect(b, true);
            assertTrue(b.isEmpty(), "a paused QEMU writes no guest RAM: " + pages(b));

            gdb.write(0x100123, new byte[] {1, 2, 3});
            gdb.write(0x2000000, new byte[4 * PAGE - 1]); // zeros over zeros still count as writes
            gdb.write(c.memoryBytes() - 8, "lastpage".getBytes());
            scanner.collect(b, false);
            List<Long> expected = List.of(0x100L, 0x2000L, 0x2001L, 0x2002L, 0x2003L, pageCount - 1);
            assertEquals(expected, pages(b), "report-only");
            b.clear();
            scanner.collect(b, true);
            assertEquals(expected, pages(b), "report-only left the record alone; this scan re-arms it");
            b.clear();
            scanner.collect(b, true);
            assertTrue(b.isEmpty(), "re-armed: " + pages(b));
        }
    }

    @Test
    void writesThroughTheAgentsOwnMappingAreNotSeenButQemuReadsThem() throws Exception {
        QemuCommand c = QemuTestSupport.paused("agentw", dir, 64)
                .hookLibrary(QemuTestSupport.hookLibrary())
                .build();
        long pageCount = c.memoryBytes() / PAGE;
        try (QemuProcess q = QemuTestSupport.start(c);
                RamFile ram = RamFile.open(c.ramFile(), c.memoryBytes());
                PagemapScanner scanner = scanner(q);
                GdbStub gdb = GdbStub.attach(q, c.runDir().resolve("gdb.sock"))) {
            PageBitmap b = new PageBitmap(pageCount);
            scanner.collect(b, true);
            b.clear();
            // Page 0x3000: QEMU has never touched it. Page 0x3001: QEMU wrote it, so its PTE is present.
            gdb.write(0x3001000, new byte[] {7});
            scanner.collect(b, true);
            assertEquals(List.of(0x3001L), pages(b));
            b.clear();
            ram.segment().set(ValueLayout.JAVA_LONG_UNALIGNED, 0x3000000L, 0x1122334455667788L);
            ram.segment().set(ValueLayout.JAVA_LONG_UNALIGNED, 0x3001000L, 0x0102030405060708L);
            scanner.collect(b, true);
            assertTrue(
                    b.isEmpty(),
                    "userfaultfd-wp lives in QEMU's page tables: the agent's writes are not QEMU's: " + pages(b));
            // Same file, so QEMU sees them: the receiving agent writes pages into a destination this way.
            assertArrayEquals(new byte[] {(byte) 0x88, 0x77, 0x66, 0x55}, gdb.read(0x3000000, 4));
            assertArrayEquals(new byte[] {8, 7, 6, 5}, gdb.read(0x3001000, 4));
        }
    }

    @Test
    void precopyRoundsWhileTheGuestRunsLeaveNoStalePage() throws Exception {
        QemuCommand c = QemuTestSupport.testGuest("precopy", dir, 128, "rate=5000 ws=32M hot=1M hotpct=50 hb=100")
                .hookLibrary(QemuTestSupport.hookLibrary())
                .build();
        long size = c.memoryBytes();
        long pageCount = size / PAGE;
        try (QemuProcess q = QemuTestSupport.start(c);
                RamFile ram = RamFile.open(c.ramFile(), size);
                PagemapScanner scanner = scanner(q);
                Arena arena = Arena.ofConfined()) {
            Timing.await("test guest writing", Duration.ofSeconds(10), () -> heartbeat(c) >= 2);
            MemorySegment copy = arena.allocate(size, PAGE);
            PageBitmap dirty = new PageBitmap(pageCount);

            // Round 0: reset the log, then copy everything; later writes are caught by the next round.
            scanner.collect(dirty, true);
            MemorySegment.copy(ram.segment(), 0, copy, 0, size);
            List<String> rounds = new ArrayList<>();
            for (int round = 1; round <= 6; round++) {
                Thread.sleep(100);
                dirty.clear();
                PagemapScanner.ScanStats st = scanner.collect(dirty, true);
                copyPages(ram.segment(), copy, dirty);
                rounds.add(st.pages() + " pages/" + String.format("%.2f", st.millis()) + " ms");
                assertTrue(st.pages() > 0, "the guest writes between rounds");
            }
            QmpClient.EventWaiter stopped = q.qmp().expect("STOP", null);
            q.qmp().execute("stop", T);
            stopped.await(T);
            dirty.clear();
            PagemapScanner.ScanStats last = scanner.collect(dirty, false);
            copyPages(ram.segment(), copy, dirty);
            rounds.add("final " + last.pages() + " pages/" + String.format("%.2f", last.millis()) + " ms");
            log.info("pre-copy rounds of a running 128 MiB guest: {}", rounds);

            long stale = 0;
            long firstStale = -1;
            for (long p = 0; p < pageCount; p++) {
                if (MemorySegment.mismatch(ram.segment(), p * PAGE, (p + 1) * PAGE, copy, p * PAGE, (p + 1) * PAGE)
                        >= 0) {
                    stale++;
                    firstStale = firstStale < 0 ? p : firstStale;
                }
            }
            assertEquals(0, stale, "pages whose copy differs from RAM, first " + firstStale);
            assertEquals(0, QemuTestSupport.guestErrors(c), QemuTestSupport.console(c));
        }
    }

    @Test
    void aScanOfAKilledQemuFailsInsteadOfReportingNothing() throws Exception {
        QemuCommand c = QemuTestSupport.paused("gone", dir, 64)
                .hookLibrary(QemuTestSupport.hookLibrary())
                .build();
        try (QemuProcess q = QemuTestSupport.start(c);
                PagemapScanner scanner = scanner(q)) {
            scanner.collect(new PageBitmap(scanner.pageCount()), true);
            Linux.kill(q.pid(), Linux.SIGKILL);
            assertTrue(q.awaitExit(T));
            HypervisorException e = assertThrows(
                    HypervisorException.class, () -> scanner.collect(new PageBitmap(scanner.pageCount()), false));
            assertTrue(e.getMessage().contains("is gone"), e.getMessage());
        }
    }

    private static void copyPages(MemorySegment from, MemorySegment to, PageBitmap pages) {
        for (long p = pages.nextSetBit(0); p >= 0; ) {
            long end = p + 1;
            while (end < pages.pageCount() && pages.get(end)) {
                end++;
            }
            MemorySegment.copy(from, p * PAGE, to, p * PAGE, (end - p) * PAGE);
            p = pages.nextSetBit(end);
        }
    }

    private static long heartbeat(QemuCommand c) {
        try {
            return QemuTestSupport.heartbeat(c);
        } catch (java.io.IOException e) {
            return -1;
        }
    }

    static String ranges(PageBitmap b) {
        StringBuilder s = new StringBuilder();
        for (long p = b.nextSetBit(0); p >= 0; ) {
            long end = p + 1;
            while (end < b.pageCount() && b.get(end)) {
                end++;
            }
            if (!s.isEmpty()) {
                s.append(' ');
            }
            s.append(String.format("0x%x", p * PAGE)).append(end - p > 1 ? String.format("+%dp", end - p) : "");
            p = b.nextSetBit(end);
        }
        return s.toString();
    }
}
