package dev.ferry.hypervisor.qemu.dirty;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout.PathElement;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class KernelAbiTest {
    @Test
    void ioctlNumbersMatchTheKernelHeaders() {
        // Values as the kernel's _IOWR macros compute them (linux/fs.h, linux/userfaultfd.h).
        assertEquals(0xC0606610L, KernelAbi.PAGEMAP_SCAN);
        assertEquals(0xC018AA3FL, KernelAbi.UFFDIO_API);
        assertEquals(0xC020AA00L, KernelAbi.UFFDIO_REGISTER);
        assertEquals(0xC018AA06L, KernelAbi.UFFDIO_WRITEPROTECT);
    }

    @Test
    void pmScanArgIsTwelveU64InKernelOrder() {
        assertEquals(96, KernelAbi.PM_SCAN_ARG.byteSize());
        String[] fields = {
            "size",
            "flags",
            "start",
            "end",
            "walk_end",
            "vec",
            "vec_len",
            "max_pages",
            "category_inverted",
            "category_mask",
            "category_anyof_mask",
            "return_mask"
        };
        for (int i = 0; i < fields.length; i++) {
            assertEquals(8L * i, KernelAbi.PM_SCAN_ARG.byteOffset(PathElement.groupElement(fields[i])), fields[i]);
        }
        assertEquals(24, KernelAbi.PAGE_REGION.byteSize());
        assertEquals(16, KernelAbi.PAGE_REGION.byteOffset(PathElement.groupElement("categories")));
    }

    @Test
    void collectAndReprotectAsksForWrittenPagesWithWpMatchingAndCheckWpAsync() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment arg = arena.allocate(KernelAbi.PM_SCAN_ARG);
            MemorySegment vec = arena.allocate(KernelAbi.PAGE_REGION, 8);
            KernelAbi.fillScanArg(arg, 0x7000_0000_0000L, 0x7000_0010_0000L, vec, 8, true);
            long[] w = arg.toArray(ValueLayout.JAVA_LONG);
            assertEquals(96, w[0]);
            assertEquals(1 | 2, w[1]);
            assertEquals(0x7000_0000_0000L, w[2]);
            assertEquals(0x7000_0010_0000L, w[3]);
            assertEquals(vec.address(), w[5]);
            assertEquals(8, w[6]);
            assertEquals(0, w[7]);
            assertEquals(0, w[8]);
            assertEquals(1 << 1, w[9]);
            assertEquals(0, w[10]);
            assertEquals(1 << 1, w[11]);
            KernelAbi.fillScanArg(arg, 0x1000, 0x2000, vec, 8, false);
            assertEquals(0, arg.get(ValueLayout.JAVA_LONG, 8), "the report-only scan sets no flags");
        }
    }
}
