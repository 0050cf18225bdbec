package dev.ferry.migration;

import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.hypervisor.PageBitmap;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLongArray;
import net.jpountz.xxhash.XXHash64;
import net.jpountz.xxhash.XXHashFactory;

/**
 * Digests of guest RAM by 16 MiB region, kept current as memory changes, so that a verified
 * migration hashes only what changed since the last look instead of all of RAM inside the pause.
 * The combined value ({@link #combined}) is {@link RamDigest}'s: xxHash64 of each region (seeded
 * with its index), then xxHash64 of the region digests in order (seeded with the size), so both
 * hosts agree exactly when their memory is equal, however each kept its digests.
 *
 * <p>The rule that keeps a region's digest true: whoever changes memory marks its region stale
 * <em>after</em> the change, and a refresh clears a region's mark <em>before</em> it reads it. A
 * change that lands while a refresh reads leaves the region marked, to be read again; a mark that
 * arrives before the clear stands for a change the read then sees. So once the last change has
 * been marked and the stale regions refreshed, every digest is of memory as it is.
 *
 * <p>Who marks: on a destination, the receiver, for every page it writes or zeroes (nothing else
 * writes a paused guest's RAM there). On a source, the pre-copy loop, for the pages each dirty
 * log read names: there the digests are only as complete as the dirty tracking, which is why the
 * source also re-reads a sample of regions it believes clean ({@link #audit}).
 */
public final class RegionDigests {
    static final int REGION = 16 << 20;
    private static final XXHash64 XXH = XXHashFactory.fastestInstance().hash64();
    private static final ThreadLocal<ByteBuffer> BUFFERS =
            ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(REGION));
    /**
     * The only threads that hash. Each keeps a 16 MiB direct buffer; a caller is often a thread of
     * its own (a destination's switchover thread per migration) whose buffer then lingered in
     * native memory until a full GC (the receiver fuzz saw 480 MiB of them). Not the common pool:
     * a thread outside a ForkJoinPool that joins a task still queued runs it itself, so callers
     * hashed after all (a clean CI machine showed 8 buffers from 8 short-lived callers).
     */
    private static final ExecutorService HASHERS = Executors.newFixedThreadPool(
            Math.max(1, Runtime.getRuntime().availableProcessors()),
            Thread.ofPlatform().daemon().name("ferry-ram-digest-", 0).factory());

    /**
     * Where a background refresh waits for its regions. Never a hashing thread: a refresh that
     * waited on a hasher for region tasks queued behind it starved the pool (two migrations' refreshes
     * on a 2-core host held both hashers, waiting for each other's queued work: ReceiverFuzzTest
     * hung). Virtual threads cost nothing while they wait.
     */
    private static final ExecutorService REFRESHERS = Executors.newThreadPerTaskExecutor(
            Thread.ofVirtual().name("ferry-digest-refresh-", 0).factory());

    private final long size;
    private final int regions;
    private final long[] digests;
    /** One bit per region, set while its digest may be out of date. */
    private final AtomicLongArray stale;
    /** The refresh under way in the background, if any (guarded by this). */
    private CompletableFuture<Void> background = CompletableFuture.completedFuture(null);
    /** Set by the final {@link #refresh}: no background pass may start after it (guarded by this). */
    private boolean finishing;

    public RegionDigests(long sizeBytes) {
        if (sizeBytes < 0) {
            throw new IllegalArgumentException("negative size " + sizeBytes);
        }
        this.size = sizeBytes;
        this.regions = (int) ((sizeBytes + REGION - 1) / REGION);
        this.digests = new long[regions];
        this.stale = new AtomicLongArray((regions + 63) / 64);
        for (int i = 0; i < regions; i++) {
            markRegion(i);
        }
    }

    public int regions() {
        return regions;
    }

    /** Marks the regions overlapping {@code length} bytes at {@code offset} as changed. */
    public void markStale(long offset, long length) {
        if (length <= 0) {
            return;
        }
        int first = (int) (offset / REGION);
        int last = (int) Math.min(regions - 1, (offset + length - 1) / REGION);
        for (int i = first; i <= last; i++) {
            markRegion(i);
        }
    }

    /** Marks the regions holding any page set in {@code pages} (pages of {@code pageSize} bytes). */
    public void markStale(PageBitmap pages, int pageSize) {
        long pagesPerRegion = REGION / pageSize;
        long p = pages.nextSetBit(0);
        while (p >= 0) {
            int region = (int) (p / pagesPerRegion);
            markRegion(region);
            long next = (region + 1L) * pagesPerRegion;
            p = next >= pages.pageCount() ? -1 : pages.nextSetBit(next);
        }
    }

    private void markRegion(int i) {
        long bit = 1L << (i & 63);
        stale.getAndUpdate(i >>> 6, w -> w | bit);
    }

    /** Clears region {@code i}'s mark; whether it was set. */
    private boolean takeMark(int i) {
        long bit = 1L << (i & 63);
        return (stale.getAndUpdate(i >>> 6, w -> w & ~bit) & bit) != 0;
    }

    /** How many regions are marked now. */
    public int staleCount() {
        int n = 0;
        for (int w = 0; w < stale.length(); w++) {
            n += Long.bitCount(stale.get(w));
        }
        return n;
    }

    /**
     * Starts refreshing the marked regions on the hashing threads, unless a refresh is under way
     * (the next call after it will take what was marked meanwhile). Never blocks.
     */
    public synchronized void refreshInBackground(GuestMemory memory) {
        if (!finishing && background.isDone()) {
            background = CompletableFuture.runAsync(() -> refreshMarked(memory), REFRESHERS);
        }
    }

    /**
     * The final refresh: stops background passes, waits for the one under way, then refreshes
     * every region still marked, in parallel; returns how many it read. Call once the last change
     * has been marked; afterwards {@link #combined} is the digest of memory as it is.
     */
    public int refresh(GuestMemory memory) {
        CompletableFuture<Void> b;
        synchronized (this) {
            finishing = true;
            b = background;
        }
        try {
            b.join();
        } catch (java.util.concurrent.CompletionException e) {
            // The background pass failed (memory unreadable): its regions are still marked, so the
            // pass below reads them again and reports the error itself.
        }
        return refreshMarked(memory);
    }

    private int refreshMarked(GuestMemory memory) {
        List<Integer> todo = new ArrayList<>();
        for (int i = 0; i < regions; i++) {
            if (takeMark(i)) {
                todo.add(i);
            }
        }
        hashAll(memory, todo, digests);
        return todo.size();
    }

    /**
     * Re-reads {@code sample} regions that are not marked and compares them with their kept
     * digests: the check, on a source, that the dirty tracking missed no write there. Returns the
     * regions whose memory no longer matches (empty when all do).
     */
    public List<Integer> audit(GuestMemory memory, List<Integer> sample) {
        List<Integer> clean = new ArrayList<>();
        for (int i : sample) {
            if ((stale.get(i >>> 6) & (1L << (i & 63))) == 0) {
                clean.add(i);
            }
        }
        long[] now = new long[regions];
        hashAll(memory, clean, now);
        List<Integer> differ = new ArrayList<>();
        for (int i : clean) {
            if (now[i] != digests[i]) {
                differ.add(i);
            }
        }
        return differ;
    }

    /** The digest of all of RAM, from the kept region digests (refresh first). */
    public long combined() {
        ByteBuffer all = ByteBuffer.allocate(regions * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long d : digests) {
            all.putLong(d);
        }
        return XXH.hash(all.array(), 0, all.capacity(), size);
    }

    private void hashAll(GuestMemory memory, List<Integer> which, long[] into) {
        List<Future<?>> work = new ArrayList<>(which.size());
        for (int i : which) {
            work.add(HASHERS.submit(() -> hashRegion(memory, i, into)));
        }
        try {
            for (Future<?> f : work) {
                f.get();
            }
        } catch (InterruptedException e) {
            work.forEach(f -> f.cancel(true));
            which.forEach(this::markRegion);
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while digesting guest RAM", e);
        } catch (ExecutionException e) {
            work.forEach(f -> f.cancel(true));
            // What was not read is marked again, so that a later refresh does not trust it.
            which.forEach(this::markRegion);
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new IllegalStateException("cannot digest guest RAM: " + e.getCause(), e.getCause());
        }
    }

    private void hashRegion(GuestMemory memory, int i, long[] into) {
        long off = (long) i * REGION;
        int len = (int) Math.min(REGION, size - off);
        ByteBuffer buf = BUFFERS.get().clear().limit(len);
        try {
            memory.read(off, java.lang.foreign.MemorySegment.ofBuffer(buf));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        into[i] = XXH.hash(buf, 0, len, i);
    }
}
