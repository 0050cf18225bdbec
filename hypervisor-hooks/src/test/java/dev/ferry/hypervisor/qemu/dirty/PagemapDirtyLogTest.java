package dev.ferry.hypervisor.qemu.dirty;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.testing.TestDirs;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class PagemapDirtyLogTest {
    private Path dir;

    @BeforeEach
    void setUp() throws Exception {
        QemuTestSupport.requireDirtyTracking();
        dir = TestDirs.ramDir("dlog");
    }

    @AfterEach
    void tearDown() throws Exception {
        TestDirs.deleteTree(dir);
    }

    @Test
    void pagesWrittenBeforeStartAreNotReported() throws Exception {
        try (WriteProtectedMapping m = new WriteProtectedMapping(dir, 32)) {
            PagemapDirtyLog log =
                    new PagemapDirtyLog(ProcessHandle.current().pid(), m.memory.address(), m.memory.byteSize());
            m.write(1);
            log.start();
            m.write(2);
            PageBitmap b = new PageBitmap(32);
            log.collect(b, true);
            assertEquals(1, b.cardinality());
            assertTrue(b.get(2));
            assertEquals(1, log.lastScan().pages());
            log.stop();
            assertEquals(PagemapDirtyLog.State.STOPPED, log.state());
            assertThrows(HypervisorException.class, () -> log.collect(new PageBitmap(32), true));
            assertThrows(HypervisorException.class, log::start);
        }
    }

    @Test
    void collectingBeforeStartIsRefused() {
        PagemapDirtyLog log = new PagemapDirtyLog(ProcessHandle.current().pid(), 0x1000, 0x1000);
        HypervisorException e = assertThrows(HypervisorException.class, () -> log.collect(new PageBitmap(1), true));
        assertTrue(e.getMessage().contains("IDLE"), e.getMessage());
    }
}
