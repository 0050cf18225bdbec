package dev.ferry.hypervisor.qemu.dirty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.testing.TestDirs;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The scanner against this JVM's own write-protected mapping: the kernel mechanism without QEMU. */
class PagemapScannerTest {
    private Path dir;

    @BeforeEach
    void setUp() throws Exception {
        QemuTestSupport.requireDirtyTracking();
        dir = TestDirs.ramDir("scan");
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

    @Test
    void rearmingForgetsReportedPagesAndReportOnlyKeepsThem() throws Exception {
        try (WriteProtectedMapping m = new WriteProtectedMapping(dir, 64);
                PagemapScanner s = m.scanner(16)) {
            m.write(5);
            m.write(63);
            PageBitmap b = new PageBitmap(64);
            s.collect(b, false);
            assertEquals(List.of(5L, 63L), pages(b));
            b.clear();
            s.collect(b, false);
            assertEquals(List.of(5L, 63L), pages(b), "a report-only scan leaves the record as it was");
            b.clear();
            PagemapScanner.ScanStats st = s.collect(b, true);
            assertEquals(List.of(5L, 63L), pages(b));
            assertEquals(2, st.pages());
            b.clear();
            s.collect(b, true);
            assertTrue(b.isEmpty(), "re-armed pages are clean until written again: " + pages(b));
            m.write(5);
            s.collect(b, true);
            assertEquals(List.of(5L), pages(b));
        }
    }

    @Test
    void collectsEveryWrittenPageEvenWhenTheRegionVectorFills() throws Exception {
        int n = 2048;
        try (WriteProtectedMapping m = new WriteProtectedMapping(dir, n);
                PagemapScanner s = m.scanner(7)) {
            List<Long> written = new ArrayList<>();
            for (long p = 0; p < n; p += 2) {
                m.write(p);
                written.add(p);
            }
            PageBitmap b = new PageBitmap(n);
            PagemapScanner.ScanStats st = s.collect(b, true);
            assertEquals(written, pages(b));
            assertEquals(n / 2, st.regions(), "every other page: no two written pages touch");
            assertTrue(st.calls() >= (n / 2) / 7, "a 7-region vector needs many calls, made " + st.calls());
            b.clear();
            s.collect(b, true);
            assertTrue(b.isEmpty());
        }
    }

    @Test
    void bitsAlreadySetInTheBitmapStaySet() throws Exception {
        try (WriteProtectedMapping m = new WriteProtectedMapping(dir, 16);
                PagemapScanner s = m.scanner(16)) {
            PageBitmap b = new PageBitmap(16);
            b.set(1);
            m.write(2);
            s.collect(b, true);
            assertEquals(List.of(1L, 2L), pages(b));
        }
    }

    @Test
    void aRangeWithoutAsyncWriteProtectIsRefusedNotReportedClean() throws Exception {
        Path f = Files.createTempFile(dir, "plain-", ".ram");
        try (Arena arena = Arena.ofConfined();
                FileChannel ch = FileChannel.open(f, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.allocate(1), 16 * 4096 - 1);
            MemorySegment plain = ch.map(FileChannel.MapMode.READ_WRITE, 0, 16 * 4096, arena);
            try (PagemapScanner s =
                    PagemapScanner.open(ProcessHandle.current().pid(), plain.address(), plain.byteSize())) {
                HypervisorException e =
                        assertThrows(HypervisorException.class, () -> s.collect(new PageBitmap(16), true));
                assertTrue(
                        e.getMessage().contains("not registered for userfaultfd async write-protect"), e.getMessage());
                assertEquals(PagemapScanner.State.BROKEN, s.state(), "a failed re-arming scan may have lost pages");
                HypervisorException again =
                        assertThrows(HypervisorException.class, () -> s.collect(new PageBitmap(16), false));
                assertTrue(again.getMessage().contains("every page must be treated as written"), again.getMessage());
            }
        }
    }

    @Test
    void refusesMisalignedRangesAndBitmapsTooSmall() throws Exception {
        long pid = ProcessHandle.current().pid();
        assertThrows(HypervisorException.class, () -> PagemapScanner.open(pid, 0x1001, 4096));
        assertThrows(HypervisorException.class, () -> PagemapScanner.open(pid, 0x1000, 100));
        HypervisorException gone =
                assertThrows(HypervisorException.class, () -> PagemapScanner.open(Integer.MAX_VALUE - 1, 0x1000, 4096));
        assertTrue(gone.getMessage().contains("process gone"), gone.getMessage());
        try (WriteProtectedMapping m = new WriteProtectedMapping(dir, 16);
                PagemapScanner s = m.scanner(4)) {
            assertThrows(IllegalArgumentException.class, () -> s.collect(new PageBitmap(15), true));
            s.close();
            assertThrows(HypervisorException.class, () -> s.collect(new PageBitmap(16), true));
        }
    }
}
