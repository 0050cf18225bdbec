package dev.ferry.hypervisor.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/** Page-level helpers over guest memory. */
public final class Pages {
    private static final MemorySegment ZERO_PAGE = Arena.global().allocate(RamFile.PAGE_SIZE, 64);

    private Pages() {}

    /** True when the page holds only zero bytes. */
    public static boolean isZero(MemorySegment memory, long offset, int pageSize) {
        return MemorySegment.mismatch(memory, offset, offset + pageSize, ZERO_PAGE, 0, pageSize) < 0;
    }
}
