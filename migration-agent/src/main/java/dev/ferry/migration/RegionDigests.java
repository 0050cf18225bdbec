package dev.ferry.migration;

import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.hypervisor.PageBitmap;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLongArray;
import net.jpountz.xxhash.XXHash64;
import net.jpountz.xxhash.XXHashFactory;

/**
 * A three-level digest tree of guest RAM, kept current as memory changes, so that a verified
 * migration hashes in the pause only the leaves the final round changed instead of all of RAM.
 *
 * <p>The tree, which both hosts build the same way from the RAM size alone ({@link #combined} is
 * {@link RamDigest}'s value):
 *
 * <ul>
 *   <li>leaves of {@link #leafBytes()} bytes (16 KiB, four 4 KiB pages, up to 8 GiB of RAM; beyond,
 *       the smallest power of two that keeps at most {@link #MAX_LEAVES} leaves, so that the kept
 *       digests stay within 4 MiB however large the guest): xxHash64 of the leaf's bytes, seeded
 *       with the leaf's index;
 *   <li>regions of {@link #LEAVES_PER_REGION} leaves (16 MiB with 16 KiB leaves): xxHash64 of
 *       their leaf digests in order (little-endian), seeded with the region's index;
 *   <li>the root: xxHash64 of the region digests in order, seeded with the RAM size.
 * </ul>
 *
 * So both hosts agree exactly when their memory is equal (up to xxHash64 collisions), however
 * each kept its digests, and comparing them costs one 64-bit value on the wire.
 *
 * <p>The rule that keeps a leaf's digest true: whoever changes memory marks its leaf stale
 * <em>after</em> the change, and a refresh clears a leaf's mark <em>before</em> it reads it. A
 * change that lands while a refresh reads leaves the leaf marked, to be read again; a mark that
 * arrives before the clear stands for a change the read then sees. So once the last change has
 * been marked and the stale leaves refreshed, every digest is of memory as it is.
 *
 * <p>Who marks: on a destination, the receiver, for every page it writes or zeroes (nothing else
 * writes a paused guest's RAM there). On a source, the pre-copy loop, for the pages each dirty
 * log read names: there the digests are only as complete as the dirty tracking, which is why the
 * source also re-reads a sample of leaves it believes clean ({@link #audit}).
 */
public final class RegionDigests {
    /**
     * How digests are computed, carried in a verified migration's handshake. Agents that digest
     * differently compare unequal roots of equal memory, so a change to the leaf or region size,
     * the hash, its seeds or the tree's shape must change this number. 1 was 16 MiB regions
     * hashed whole (agents of that time send 0: the field did not exist); 2 is this tree.
     */
    public static final int SCHEME = 2;

    /**
     * Why a verified migration cannot go on with a peer that digests RAM by {@code peerScheme}
     * ({@code peer} names it: "the source", "the destination"), or empty when it can.
     */
    public static java.util.Optional<String> schemeMismatch(String peer, int peerScheme) {
        if (peerScheme == SCHEME) {
            return java.util.Optional.empty();
        }
        return java.util.Optional.of(peer + " digests RAM by " + describeScheme(peerScheme) + ", this agent by "
                + describeScheme(SCHEME)
                + ": --verify needs the same Ferry on both hosts (migrate without --verify, or upgrade one)");
    }

    /** A name for a scheme number in an error an operator reads. */
    private static String describeScheme(int scheme) {
        return switch (scheme) {
            case 0, 1 -> "scheme " + scheme + " (an earlier Ferry: 16 MiB regions hashed whole)";
            case SCHEME -> "scheme " + SCHEME + " (16 KiB leaves under 16 MiB regions)";
            default -> "scheme " + Integer.toUnsignedString(scheme) + " (unknown to this agent: a later Ferry?)";
        };
    }

    /** The leaf size while the guest has at most {@link #MAX_LEAVES} of them (8 GiB). */
    static final int MIN_LEAF = 16 << 10;
    /** At most this many leaves: 4 MiB of kept leaf digests, whatever the guest's size. */
    static final long MAX_LEAVES = 1L << 19;

    static final int LEAVES_PER_REGION = 1024;
    /** Contiguous stale leaves are read together, up to this many bytes per read. */
    private static final int READ_BYTES = 1 << 20;

    private static final XXHash64 XXH = XXHashFactory.fastestInstance().hash64();
    private static final ThreadLocal<ByteBuffer[]> BUFFERS = ThreadLocal.withInitial(() -> new ByteBuffer[1]);
    /**
     * The only threads that hash. Each keeps one direct read buffer (1 MiB, or one leaf if larger);
     * a caller is often a thread of its own (a destination's switchover thread per migration)
     * whose buffer then lingered in native memory until a full GC (the receiver fuzz saw 480 MiB
     * of 16 MiB ones). Not the common pool: a thread outside a ForkJoinPool that joins a task still
     * queued runs it itself, so callers hashed after all (a clean CI machine showed 8 buffers from
     * 8 short-lived callers).
     */
    private static final ExecutorService HASHERS = Executors.newFixedThreadPool(
            Math.max(1, Runtime.getRuntime().availableProcessors()),
            Thread.ofPlatform().daemon().name("ferry-ram-digest-", 0).factory());

    private static final int HASHER_COUNT = Math.max(1, Runtime.getRuntime().availableProcessors());

    /**
     * Where a background refresh waits for its leaves. Never a hashing thread: a refresh that
     * waited on a hasher for tasks queued behind it starved the pool (two migrations' refreshes on
     * a 2-core host held both hashers, waiting for each other's queued work: ReceiverFuzzTest
     * hung). Virtual threads cost nothing while they wait.
     */
    private static final ExecutorService REFRESHERS = Executors.newThreadPerTaskExecutor(
            Thread.ofVirtual().name("ferry-digest-refresh-", 0).factory());

    private final long size;
    private final int leafBytes;
    private final int leaves;
    private final int regions;
    private final long[] leafDigests;
    private final long[] regionDigests;
    /** One bit per leaf, set while its digest may be out of date. */
    private final AtomicLongArray stale;
    /** The refresh under way in the background, if any (guarded by this). */
    private CompletableFuture<Void> background = CompletableFuture.completedFuture(null);
    /** A background refresh is running and has not yet decided to stop (guarded by this). */
    private boolean running;
    /** Asked for again while one ran: it passes once more before it stops (guarded by this). */
    private boolean again;
    /** Set by the final {@link #refresh}: no background pass may start after it (guarded by this). */
    private boolean finishing;

    public RegionDigests(long sizeBytes) {
        if (sizeBytes < 0) {
            throw new IllegalArgumentException("negative size " + sizeBytes);
        }
        this.size = sizeBytes;
        this.leafBytes = leafBytesFor(sizeBytes);
        long n = (sizeBytes + leafBytes - 1) / leafBytes;
        this.leaves = (int) n;
        this.regions = (leaves + LEAVES_PER_REGION - 1) / LEAVES_PER_REGION;
        this.leafDigests = new long[leaves];
        this.regionDigests = new long[regions];
        this.stale = new AtomicLongArray((leaves + 63) / 64);
        for (int w = 0; w < stale.length(); w++) {
            int bits = Math.min(64, leaves - w * 64);
            stale.set(w, bits == 64 ? -1L : (1L << bits) - 1);
        }
    }

    /** The leaf size for a guest of {@code sizeBytes}: 16 KiB, or larger to keep the leaf count bounded. */
    static int leafBytesFor(long sizeBytes) {
        long leaf = MIN_LEAF;
        while ((sizeBytes + leaf - 1) / leaf > MAX_LEAVES) {
            leaf <<= 1;
        }
        return (int) leaf;
    }

    public int leaves() {
        return leaves;
    }

    public int regions() {
        return regions;
    }

    public int leafBytes() {
        return leafBytes;
    }

    /** The memory the kept digests take (leaf and region digests, marks), for the docs' figure. */
    public long keptBytes() {
        return 8L * leaves + 8L * regions + 8L * stale.length();
    }

    /** Marks the leaves overlapping {@code length} bytes at {@code offset} as changed. */
    public void markStale(long offset, long length) {
        if (length <= 0) {
            return;
        }
        int first = (int) (offset / leafBytes);
        int last = (int) Math.min(leaves - 1, (offset + length - 1) / leafBytes);
        for (int i = first; i <= last; i++) {
            markLeaf(i);
        }
    }

    /** Marks the leaves holding any page set in {@code pages} (pages of {@code pageSize} bytes). */
    public void markStale(PageBitmap pages, int pageSize) {
        long pagesPerLeaf = Math.max(1, leafBytes / pageSize);
        long p = pages.nextSetBit(0);
        while (p >= 0) {
            int leaf = (int) Math.min(leaves - 1, p * pageSize / leafBytes);
            markLeaf(leaf);
            long next = (p / pagesPerLeaf + 1) * pagesPerLeaf;
            p = next >= pages.pageCount() ? -1 : pages.nextSetBit(next);
        }
    }

    private void markLeaf(int i) {
        long bit = 1L << (i & 63);
        int w = i >>> 6;
        if ((stale.get(w) & bit) == 0) {
            stale.getAndUpdate(w, v -> v | bit);
        }
    }

    private boolean isMarked(int i) {
        return (stale.get(i >>> 6) & (1L << (i & 63))) != 0;
    }

    /** How many leaves are marked now. */
    public int staleCount() {
        int n = 0;
        for (int w = 0; w < stale.length(); w++) {
            n += Long.bitCount(stale.get(w));
        }
        return n;
    }

    /**
     * Starts refreshing the marked leaves on the hashing threads; when a refresh is under way, it
     * passes once more before it stops, for what was marked meanwhile (a destination's lanes each
     * ask as they write: a request that found a pass running used to be dropped, and the marks of
     * the second lane's last round waited for the pause). Never blocks.
     */
    public synchronized void refreshInBackground(GuestMemory memory) {
        if (finishing) {
            return;
        }
        if (running) {
            again = true;
            return;
        }
        running = true;
        background = CompletableFuture.runAsync(() -> refreshWhileAsked(memory), REFRESHERS);
    }

    /**
     * Waits until no background refresh is running. A source calls it before it pauses the guest:
     * the last round's refresh then hashes while the guest still runs, instead of competing with
     * the final pages for the host's cores in the pause, and the pause re-reads only what the guest
     * changed after it.
     */
    public void awaitBackground() {
        while (true) {
            CompletableFuture<Void> b;
            synchronized (this) {
                if (!running) {
                    return;
                }
                b = background;
            }
            b.join();
        }
    }

    private void refreshWhileAsked(GuestMemory memory) {
        try {
            while (true) {
                refreshMarked(memory);
                synchronized (this) {
                    if (!again || finishing) {
                        running = false;
                        return;
                    }
                    again = false;
                }
            }
        } catch (RuntimeException e) {
            synchronized (this) {
                running = false;
                again = false;
            }
            throw e;
        }
    }

    /**
     * The final refresh: stops background passes, waits for the one under way, then refreshes
     * every leaf still marked, in parallel; returns how many it read. Call once the last change
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
            // The background pass failed (memory unreadable): its leaves are still marked, so the
            // pass below reads them again and reports the error itself.
        }
        return refreshMarked(memory);
    }

    /** {@link #refresh} on a thread of its own, for a caller with other work in the meantime. */
    public CompletableFuture<Integer> refreshAsync(GuestMemory memory) {
        return CompletableFuture.supplyAsync(() -> refresh(memory), REFRESHERS);
    }

    private int refreshMarked(GuestMemory memory) {
        int[] todo = new int[staleCount()];
        int n = 0;
        for (int w = 0; w < stale.length(); w++) {
            long bits = stale.getAndSet(w, 0);
            while (bits != 0 && n < todo.length) {
                todo[n++] = w * 64 + Long.numberOfTrailingZeros(bits);
                bits &= bits - 1;
            }
            if (bits != 0) {
                // Marked after the count: put back, the next refresh takes them.
                long rest = bits;
                stale.getAndUpdate(w, v -> v | rest);
            }
        }
        int[] taken = java.util.Arrays.copyOf(todo, n);
        hashLeaves(memory, taken, leafDigests, false);
        // The regions above the leaves read: their digests are of the leaf digests, in memory.
        int lastRegion = -1;
        for (int leaf : taken) {
            int r = leaf / LEAVES_PER_REGION;
            if (r != lastRegion) {
                regionDigests[r] = regionDigest(leafDigests, r);
                lastRegion = r;
            }
        }
        return n;
    }

    private long regionDigest(long[] from, int r) {
        int first = r * LEAVES_PER_REGION;
        int count = Math.min(LEAVES_PER_REGION, leaves - first);
        ByteBuffer b = ByteBuffer.allocate(count * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < count; i++) {
            b.putLong(from[first + i]);
        }
        return XXH.hash(b.array(), 0, count * 8, r);
    }

    /** What an audit found: the sampled leaves whose memory no longer matches their kept digests. */
    public record Audit(int sampled, List<Long> mismatchedOffsets) {
        public boolean clean() {
            return mismatchedOffsets.isEmpty();
        }
    }

    /**
     * The leaves an audit with {@code seed} re-reads: {@code count} of them spread over all of RAM,
     * one drawn at random from each of {@code count} equal stretches of leaves (all of them when
     * there are fewer), in ascending order.
     */
    public int[] sample(long seed, int count) {
        if (count >= leaves) {
            int[] all = new int[leaves];
            java.util.Arrays.setAll(all, i -> i);
            return all;
        }
        SplittableRandom r = new SplittableRandom(seed);
        int[] picked = new int[count];
        for (int s = 0; s < count; s++) {
            long from = (long) s * leaves / count;
            long to = (long) (s + 1) * leaves / count;
            picked[s] = (int) (from + r.nextLong(to - from));
        }
        return picked;
    }

    /**
     * Re-reads a seeded sample of {@code count} leaves that are not marked (see {@link #sample})
     * and compares them with their kept digests: the check that whatever marks this side's leaves
     * missed no change there (on a source, the dirty tracking; on a destination, that nothing but
     * the lanes wrote its RAM). Call after the final {@link #refresh}.
     */
    public Audit audit(GuestMemory memory, long seed, int count) {
        int[] picked = sample(seed, count);
        int[] clean = java.util.Arrays.stream(picked).filter(i -> !isMarked(i)).toArray();
        long[] now = new long[clean.length];
        hashLeaves(memory, clean, now, true);
        List<Long> differ = new ArrayList<>();
        for (int k = 0; k < clean.length; k++) {
            if (now[k] != leafDigests[clean[k]]) {
                differ.add((long) clean[k] * leafBytes);
            }
        }
        return new Audit(clean.length, differ);
    }

    /** The digest of all of RAM, the tree's root, from the kept digests (refresh first). */
    public long combined() {
        ByteBuffer all = ByteBuffer.allocate(regions * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long d : regionDigests) {
            all.putLong(d);
        }
        return XXH.hash(all.array(), 0, all.capacity(), size);
    }

    /**
     * Hashes the given leaves (ascending) into {@code into}, at each leaf's index or, {@code
     * byPosition}, at its position in {@code which}: runs of adjacent leaves are read together, and
     * the work is split between the hashing threads.
     */
    private void hashLeaves(GuestMemory memory, int[] which, long[] into, boolean byPosition) {
        if (which.length == 0) {
            return;
        }
        int tasks = Math.min(HASHER_COUNT, Math.max(1, which.length / 8));
        List<Future<?>> work = new ArrayList<>(tasks);
        for (int t = 0; t < tasks; t++) {
            int from = (int) ((long) t * which.length / tasks);
            int to = (int) ((long) (t + 1) * which.length / tasks);
            work.add(HASHERS.submit(() -> hashRange(memory, which, from, to, into, byPosition)));
        }
        try {
            for (Future<?> f : work) {
                f.get();
            }
        } catch (InterruptedException e) {
            work.forEach(f -> f.cancel(true));
            remark(which);
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while digesting guest RAM", e);
        } catch (ExecutionException e) {
            work.forEach(f -> f.cancel(true));
            // What was not read is marked again, so that a later refresh does not trust it.
            remark(which);
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new IllegalStateException("cannot digest guest RAM: " + e.getCause(), e.getCause());
        }
    }

    private void remark(int[] which) {
        for (int i : which) {
            markLeaf(i);
        }
    }

    private void hashRange(GuestMemory memory, int[] which, int from, int to, long[] into, boolean byPosition) {
        int perRead = Math.max(1, READ_BYTES / leafBytes);
        ByteBuffer buf = buffer(Math.max(READ_BYTES, leafBytes));
        int k = from;
        while (k < to) {
            // A run of adjacent leaves, at most one read's worth.
            int run = 1;
            while (k + run < to && run < perRead && which[k + run] == which[k] + run) {
                run++;
            }
            long off = (long) which[k] * leafBytes;
            int len = (int) Math.min((long) run * leafBytes, size - off);
            buf.clear().limit(len);
            try {
                memory.read(off, java.lang.foreign.MemorySegment.ofBuffer(buf));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            for (int j = 0; j < run; j++) {
                int leaf = which[k + j];
                int at = j * leafBytes;
                into[byPosition ? k + j : leaf] = XXH.hash(buf, at, Math.min(leafBytes, len - at), leaf);
            }
            k += run;
        }
    }

    private static ByteBuffer buffer(int bytes) {
        ByteBuffer[] holder = BUFFERS.get();
        if (holder[0] == null || holder[0].capacity() < bytes) {
            holder[0] = ByteBuffer.allocateDirect(bytes);
        }
        return holder[0];
    }
}
