package dev.ferry.hypervisor.qemu.dirty;

import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.hypervisor.linux.LinuxException;
import java.io.Closeable;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;

/**
 * Which pages of a range of another process's memory were written, from the kernel's
 * userfaultfd async write-protect record, read and re-armed with PAGEMAP_SCAN on
 * {@code /proc/PID/pagemap}.
 *
 * <p>The range must be registered for userfaultfd write-protect in async mode inside that process
 * (QEMU's LD_PRELOAD hook does it for the guest RAM mapping). Pages are 4 KiB and numbered from
 * the start of the range, so with the mapping of the RAM file from offset 0 a page number is a
 * page of the RAM file.
 *
 * <p>{@link #collect} with {@code rearm} asks the kernel for the written pages and write-protects
 * them again in the same call (flags {@code PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC}): a
 * write that lands after a page was reported marks it again for the next round. Without {@code
 * rearm} (flags 0) it only reports: the cheap form for the final pass while the guest is paused.
 *
 * <p>Lifecycle: {@code OPEN} → {@code CLOSED}, or {@code BROKEN} after a failed re-arming scan:
 * the kernel may have re-protected pages it never reported, so the log can no longer be trusted
 * and the caller must treat every page as written. Not for concurrent use: one collector at a
 * time (calls are serialised).
 */
public final class PagemapScanner implements Closeable {
    public static final int PAGE_SIZE = 4096;
    /** Regions per ioctl call; written pages come in runs, so a busy 4 GiB guest rarely needs two calls. */
    static final int DEFAULT_VECTOR_REGIONS = 4096;

    /** Lifecycle of a scanner. */
    public enum State {
        OPEN,
        BROKEN,
        CLOSED
    }

    /**
     * What one collection found and cost.
     *
     * @param pages pages reported written
     * @param regions runs of written pages the kernel returned
     * @param calls PAGEMAP_SCAN calls it took (more than one when the region vector filled)
     * @param nanos wall time of the calls
     */
    public record ScanStats(long pages, long regions, int calls, long nanos) {
        public double millis() {
            return nanos / 1e6;
        }
    }

    private final long pid;
    private final long start;
    private final long length;
    private final int fd;
    /** The process's start time (field 22 of /proc/PID/stat), so a reused pid is not taken for it. */
    private final long startTime;

    private final Arena arena;
    private final MemorySegment arg;
    private final MemorySegment vec;
    private final int vecRegions;
    private State state = State.OPEN;

    private PagemapScanner(long pid, long start, long length, int fd, long startTime, int vecRegions) {
        this.pid = pid;
        this.startTime = startTime;
        this.start = start;
        this.length = length;
        this.fd = fd;
        this.vecRegions = vecRegions;
        this.arena = Arena.ofShared();
        this.arg = arena.allocate(KernelAbi.PM_SCAN_ARG);
        this.vec = arena.allocate(KernelAbi.PAGE_REGION, vecRegions);
    }

    /**
     * Opens {@code /proc/PID/pagemap} to scan [start, start + length) of process {@code pid}. Both
     * must be page-aligned.
     */
    public static PagemapScanner open(long pid, long start, long length) throws HypervisorException {
        return open(pid, start, length, DEFAULT_VECTOR_REGIONS);
    }

    static PagemapScanner open(long pid, long start, long length, int vecRegions) throws HypervisorException {
        if (start == 0 || start % PAGE_SIZE != 0 || length <= 0 || length % PAGE_SIZE != 0) {
            throw new HypervisorException(
                    "open dirty log",
                    String.format("range [0x%x, +%d) is not a non-empty page-aligned range", start, length));
        }
        if (vecRegions < 1) {
            throw new IllegalArgumentException("vector of " + vecRegions + " regions");
        }
        String path = "/proc/" + pid + "/pagemap";
        int fd;
        try {
            fd = Linux.open(path, Linux.O_RDONLY | Linux.O_CLOEXEC);
        } catch (LinuxException e) {
            throw new HypervisorException(
                    "open dirty log",
                    "cannot open " + path + ": " + e.getMessage() + (e.errno() == 2 ? " (process gone?)" : ""),
                    e);
        }
        OptionalLong startTime = startTime(pid);
        if (startTime.isEmpty()) {
            Linux.close(fd);
            throw new HypervisorException("open dirty log", "process " + pid + " is gone");
        }
        return new PagemapScanner(pid, start, length, fd, startTime.getAsLong(), vecRegions);
    }

    /** Start time of a living (not zombie) process {@code pid}, or empty when there is none. */
    private static OptionalLong startTime(long pid) {
        String stat;
        try {
            stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"), StandardCharsets.US_ASCII);
        } catch (IOException e) {
            return OptionalLong.empty();
        }
        // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        char state = f[0].charAt(0);
        if (state == 'Z' || state == 'X' || state == 'x') {
            return OptionalLong.empty();
        }
        return OptionalLong.of(Long.parseLong(f[19]));
    }

    /**
     * Whether the scanned process still lives. Needed after every scan: on some kernels (6.18.44
     * here) PAGEMAP_SCAN of a process that has exited succeeds and reports no page, which would
     * read as "nothing written" instead of "the log is lost".
     */
    private boolean alive() {
        OptionalLong now = startTime(pid);
        return now.isPresent() && now.getAsLong() == startTime;
    }

    public long pid() {
        return pid;
    }

    /** First address of the range, in the scanned process. */
    public long start() {
        return start;
    }

    public long length() {
        return length;
    }

    public long pageCount() {
        return length / PAGE_SIZE;
    }

    public synchronized State state() {
        return state;
    }

    /**
     * Sets in {@code into} the bit of every page written since the previous re-arming collection
     * (or since the range was write-protected), then, with {@code rearm}, write-protects those
     * pages again. Bits already set in {@code into} stay set.
     */
    public synchronized ScanStats collect(PageBitmap into, boolean rearm) throws HypervisorException {
        String step = rearm ? "collect dirty pages" : "collect dirty pages (report only)";
        if (state == State.CLOSED) {
            throw new HypervisorException(step, "the scanner of pid " + pid + " is closed");
        }
        if (state == State.BROKEN) {
            throw new HypervisorException(
                    step,
                    "an earlier re-arming scan of pid " + pid
                            + " failed part-way; the dirty log is lost and every page must be treated as written");
        }
        if (into.pageCount() < pageCount()) {
            throw new IllegalArgumentException(
                    "bitmap of " + into.pageCount() + " pages for a range of " + pageCount());
        }
        long end = start + length;
        long cursor = start;
        long pages = 0;
        long regions = 0;
        int calls = 0;
        long t0 = System.nanoTime();
        while (cursor < end) {
            KernelAbi.fillScanArg(arg, cursor, end, vec, vecRegions, rearm);
            int n;
            try {
                // SAFETY: arg is a 96-byte pm_scan_arg in this scanner's arena whose vec field points at
                // vecRegions page_region slots in the same arena; both outlive the call (the arena closes
                // only in close(), which is serialised with this method). The kernel writes at most
                // vec_len regions and the walk_end field, nothing else.
                n = Linux.ioctl(fd, KernelAbi.PAGEMAP_SCAN, arg);
            } catch (LinuxException e) {
                if (rearm) {
                    state = State.BROKEN;
                }
                throw new HypervisorException(step, explain(e), e);
            }
            calls++;
            if (n > vecRegions) {
                state = State.BROKEN;
                throw new HypervisorException(step, "kernel returned " + n + " regions for a vector of " + vecRegions);
            }
            for (int i = 0; i < n; i++) {
                long offset = i * KernelAbi.PAGE_REGION.byteSize();
                long rs = (long) KernelAbi.REGION_START.get(vec, offset);
                long re = (long) KernelAbi.REGION_END.get(vec, offset);
                if (rs < cursor || re > end || rs >= re || (rs - start) % PAGE_SIZE != 0) {
                    state = State.BROKEN;
                    throw new HypervisorException(
                            step,
                            String.format(
                                    "kernel returned region [0x%x, 0x%x) outside the scanned [0x%x, 0x%x)",
                                    rs, re, cursor, end));
                }
                long first = (rs - start) / PAGE_SIZE;
                long last = (re - start + PAGE_SIZE - 1) / PAGE_SIZE;
                into.setRange(first, last);
                pages += last - first;
            }
            regions += n;
            long walkEnd = (long) KernelAbi.ARG_WALK_END.get(arg, 0L);
            if (walkEnd <= cursor) {
                // The kernel made no progress: looping again would spin forever.
                state = rearm ? State.BROKEN : state;
                throw new HypervisorException(
                        step,
                        String.format(
                                "PAGEMAP_SCAN stopped at 0x%x without progress (range [0x%x, 0x%x))",
                                walkEnd, cursor, end));
            }
            cursor = walkEnd;
        }
        if (!alive()) {
            if (rearm) {
                state = State.BROKEN;
            }
            throw new HypervisorException(
                    step,
                    "process " + pid + " is gone: exited before or during the scan, " + "so what it wrote is unknown");
        }
        return new ScanStats(pages, regions, calls, System.nanoTime() - t0);
    }

    private String explain(LinuxException e) {
        String range = String.format("[0x%x, 0x%x) of pid %d", start, start + length, pid);
        return switch (e.errno()) {
            case 1 ->
                "PAGEMAP_SCAN refused " + range + ": " + e.getMessage()
                        + "; the range is not registered for userfaultfd async write-protect (hook not active in that process?)";
            case 3 -> "process " + pid + " is gone: " + e.getMessage();
            case 22, 25 ->
                "PAGEMAP_SCAN failed on " + range + ": " + e.getMessage()
                        + " (kernel older than 6.7, without PAGEMAP_SCAN?)";
            default -> "PAGEMAP_SCAN failed on " + range + ": " + e.getMessage();
        };
    }

    @Override
    public synchronized void close() {
        if (state == State.CLOSED) {
            return;
        }
        state = State.CLOSED;
        Linux.close(fd);
        arena.close();
    }

    @Override
    public String toString() {
        return String.format("PagemapScanner[pid %d, 0x%x +%d MiB, %s]", pid, start, length >> 20, state);
    }
}
