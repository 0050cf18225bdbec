package dev.ferry.hypervisor.qemu.dirty;

import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * The kernel structures and constants of userfaultfd write-protect (async mode) and
 * PAGEMAP_SCAN, spelled out here because Debian 12's headers predate them (Linux 6.7 added
 * PAGEMAP_SCAN and UFFD_FEATURE_WP_ASYNC). x86_64 and aarch64 share these numbers.
 */
final class KernelAbi {
    private KernelAbi() {}

    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG;

    // ---- ioctl numbers: _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr

    static final int IOC_WRITE = 1;
    static final int IOC_READ = 2;

    static long ioc(int dir, int type, int nr, long size) {
        if (size < 0 || size >= (1 << 14)) {
            throw new IllegalArgumentException("ioctl argument size " + size + " does not fit 14 bits");
        }
        return ((long) dir << 30) | (size << 16) | ((long) type << 8) | nr;
    }

    static long iowr(int type, int nr, long size) {
        return ioc(IOC_READ | IOC_WRITE, type, nr, size);
    }

    // ---- PAGEMAP_SCAN (linux/fs.h)

    /** struct pm_scan_arg: twelve u64. */
    static final StructLayout PM_SCAN_ARG = MemoryLayout.structLayout(
            U64.withName("size"),
            U64.withName("flags"),
            U64.withName("start"),
            U64.withName("end"),
            U64.withName("walk_end"),
            U64.withName("vec"),
            U64.withName("vec_len"),
            U64.withName("max_pages"),
            U64.withName("category_inverted"),
            U64.withName("category_mask"),
            U64.withName("category_anyof_mask"),
            U64.withName("return_mask"));

    /** struct page_region: one run of pages with the same categories, [start, end). */
    static final StructLayout PAGE_REGION =
            MemoryLayout.structLayout(U64.withName("start"), U64.withName("end"), U64.withName("categories"));

    static final long PAGEMAP_SCAN = iowr('f', 16, PM_SCAN_ARG.byteSize());

    /** Write-protect the pages reported: collect-and-reprotect in one call. */
    static final long PM_SCAN_WP_MATCHING = 1L << 0;
    /** Fail (EPERM) rather than skip a range without async write-protect. */
    static final long PM_SCAN_CHECK_WPASYNC = 1L << 1;

    static final long PAGE_IS_WPALLOWED = 1L << 0;
    static final long PAGE_IS_WRITTEN = 1L << 1;

    static final VarHandle ARG_SIZE = field(PM_SCAN_ARG, "size");
    static final VarHandle ARG_FLAGS = field(PM_SCAN_ARG, "flags");
    static final VarHandle ARG_START = field(PM_SCAN_ARG, "start");
    static final VarHandle ARG_END = field(PM_SCAN_ARG, "end");
    static final VarHandle ARG_WALK_END = field(PM_SCAN_ARG, "walk_end");
    static final VarHandle ARG_VEC = field(PM_SCAN_ARG, "vec");
    static final VarHandle ARG_VEC_LEN = field(PM_SCAN_ARG, "vec_len");
    static final VarHandle ARG_MAX_PAGES = field(PM_SCAN_ARG, "max_pages");
    static final VarHandle ARG_CATEGORY_INVERTED = field(PM_SCAN_ARG, "category_inverted");
    static final VarHandle ARG_CATEGORY_MASK = field(PM_SCAN_ARG, "category_mask");
    static final VarHandle ARG_CATEGORY_ANYOF_MASK = field(PM_SCAN_ARG, "category_anyof_mask");
    static final VarHandle ARG_RETURN_MASK = field(PM_SCAN_ARG, "return_mask");

    static final VarHandle REGION_START = field(PAGE_REGION, "start");
    static final VarHandle REGION_END = field(PAGE_REGION, "end");
    static final VarHandle REGION_CATEGORIES = field(PAGE_REGION, "categories");

    /**
     * Fills {@code arg} for one PAGEMAP_SCAN call over [start, end) asking for written pages only,
     * reporting into {@code vec}, write-protecting them again when {@code rearm}.
     */
    static void fillScanArg(MemorySegment arg, long start, long end, MemorySegment vec, long vecLen, boolean rearm) {
        ARG_SIZE.set(arg, 0L, PM_SCAN_ARG.byteSize());
        ARG_FLAGS.set(arg, 0L, rearm ? PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC : 0L);
        ARG_START.set(arg, 0L, start);
        ARG_END.set(arg, 0L, end);
        ARG_WALK_END.set(arg, 0L, 0L);
        ARG_VEC.set(arg, 0L, vec.address());
        ARG_VEC_LEN.set(arg, 0L, vecLen);
        ARG_MAX_PAGES.set(arg, 0L, 0L);
        ARG_CATEGORY_INVERTED.set(arg, 0L, 0L);
        ARG_CATEGORY_MASK.set(arg, 0L, PAGE_IS_WRITTEN);
        ARG_CATEGORY_ANYOF_MASK.set(arg, 0L, 0L);
        ARG_RETURN_MASK.set(arg, 0L, PAGE_IS_WRITTEN);
    }

    // ---- userfaultfd (linux/userfaultfd.h)

    static final long UFFD_API = 0xAA;
    static final int UFFD_USER_MODE_ONLY = 1;
    static final long UFFD_FEATURE_WP_UNPOPULATED = 1L << 13;
    static final long UFFD_FEATURE_WP_ASYNC = 1L << 15;
    static final long UFFDIO_REGISTER_MODE_WP = 1L << 1;
    static final long UFFDIO_WRITEPROTECT_MODE_WP = 1L << 0;

    /** struct uffdio_api { u64 api; u64 features; u64 ioctls; }. */
    static final StructLayout UFFDIO_API_ARG =
            MemoryLayout.structLayout(U64.withName("api"), U64.withName("features"), U64.withName("ioctls"));
    /** struct uffdio_register { struct uffdio_range { u64 start; u64 len; } range; u64 mode; u64 ioctls; }. */
    static final StructLayout UFFDIO_REGISTER_ARG = MemoryLayout.structLayout(
            U64.withName("start"), U64.withName("len"), U64.withName("mode"), U64.withName("ioctls"));
    /** struct uffdio_writeprotect { struct uffdio_range range; u64 mode; }. */
    static final StructLayout UFFDIO_WRITEPROTECT_ARG =
            MemoryLayout.structLayout(U64.withName("start"), U64.withName("len"), U64.withName("mode"));

    static final long UFFDIO_API = iowr(0xAA, 0x3F, UFFDIO_API_ARG.byteSize());
    static final long UFFDIO_REGISTER = iowr(0xAA, 0x00, UFFDIO_REGISTER_ARG.byteSize());
    static final long UFFDIO_WRITEPROTECT = iowr(0xAA, 0x06, UFFDIO_WRITEPROTECT_ARG.byteSize());

    private static VarHandle field(StructLayout layout, String name) {
        return layout.varHandle(MemoryLayout.PathElement.groupElement(name));
    }
}
