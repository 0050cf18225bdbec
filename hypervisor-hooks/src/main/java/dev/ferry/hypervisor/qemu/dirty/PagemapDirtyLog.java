package dev.ferry.hypervisor.qemu.dirty;

import dev.ferry.hypervisor.DirtyLog;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.PageBitmap;

/**
 * The SPI's {@link DirtyLog} over a {@link PagemapScanner}: the driver's dirty log of a QEMU whose
 * guest RAM the hook write-protected.
 *
 * <p>Lifecycle: {@code IDLE} → {@code TRACKING} ({@link #start()}, which may be called again to
 * start afresh) → {@code STOPPED} ({@link #stop()}, final).
 */
public final class PagemapDirtyLog implements DirtyLog {
    /** Lifecycle of the log. */
    public enum State {
        IDLE,
        TRACKING,
        STOPPED
    }

    private final long pid;
    private final long start;
    private final long length;
    private PagemapScanner scanner;
    private State state = State.IDLE;
    private PagemapScanner.ScanStats last;

    /** A log of [start, start + length) in process {@code pid}: QEMU's mapping of the RAM file. */
    public PagemapDirtyLog(long pid, long start, long length) {
        this.pid = pid;
        this.start = start;
        this.length = length;
    }

    public synchronized State state() {
        return state;
    }

    /** What the last collection found and cost, or null before the first. */
    public synchronized PagemapScanner.ScanStats lastScan() {
        return last;
    }

    /**
     * Opens the scanner and discards what was written so far: the hook write-protected the range
     * when QEMU mapped it, so without this the first collection would report boot-time writes.
     */
    @Override
    public synchronized void start() throws HypervisorException {
        if (state == State.STOPPED) {
            throw new HypervisorException("start dirty log", "the dirty log of pid " + pid + " is stopped");
        }
        if (scanner == null) {
            scanner = PagemapScanner.open(pid, start, length);
        }
        scanner.collect(new PageBitmap(scanner.pageCount()), true);
        state = State.TRACKING;
    }

    @Override
    public synchronized void collect(PageBitmap into, boolean rearm) throws HypervisorException {
        if (state != State.TRACKING) {
            throw new HypervisorException("collect dirty pages", "the dirty log of pid " + pid + " is " + state);
        }
        last = scanner.collect(into, rearm);
    }

    @Override
    public synchronized void stop() {
        state = State.STOPPED;
        if (scanner != null) {
            scanner.close();
            scanner = null;
        }
    }
}
