package dev.ferry.hypervisor.sim;

import dev.ferry.hypervisor.DirtyLog;
import dev.ferry.hypervisor.PageBitmap;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * The simulated guest's own write tracking: the guest marks a page after writing it, so a write
 * racing with a collection is always reported, at the latest by the next collection.
 */
final class SimDirtyLog implements DirtyLog {
    private final long pageCount;
    private final AtomicLongArray words;
    private volatile boolean tracking;

    SimDirtyLog(long pageCount) {
        this.pageCount = pageCount;
        this.words = new AtomicLongArray((int) ((pageCount + 63) >>> 6));
    }

    void mark(long page) {
        if (tracking) {
            words.accumulateAndGet((int) (page >>> 6), 1L << page, (a, b) -> a | b);
        }
    }

    @Override
    public void start() {
        for (int i = 0; i < words.length(); i++) {
            words.set(i, 0);
        }
        tracking = true;
    }

    @Override
    public void collect(PageBitmap into, boolean rearm) {
        if (into.pageCount() != pageCount) {
            throw new IllegalArgumentException("bitmap of " + into.pageCount() + " pages for a log of " + pageCount);
        }
        for (int i = 0; i < words.length(); i++) {
            long w = rearm ? words.getAndSet(i, 0) : words.get(i);
            if (w != 0) {
                into.orWord(i, w);
            }
        }
    }

    @Override
    public void stop() {
        tracking = false;
    }
}
