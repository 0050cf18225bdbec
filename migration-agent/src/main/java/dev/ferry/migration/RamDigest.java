package dev.ferry.migration;

import dev.ferry.hypervisor.GuestMemory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import net.jpountz.xxhash.XXHash64;
import net.jpountz.xxhash.XXHashFactory;

/**
 * A digest of all of guest RAM, the same on both hosts when their memory is equal: xxHash64 of
 * every 16 MiB chunk (chunks in parallel), then xxHash64 of the chunk digests in order.
 */
public final class RamDigest {
    private static final int CHUNK = 16 << 20;
    private static final XXHash64 XXH = XXHashFactory.fastestInstance().hash64();
    private static final ThreadLocal<ByteBuffer> BUFFERS =
            ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(CHUNK));
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

    private RamDigest() {}

    public static long of(GuestMemory memory) {
        long size = memory.sizeBytes();
        int chunks = (int) ((size + CHUNK - 1) / CHUNK);
        long[] digests = new long[chunks];
        List<Future<?>> work = new ArrayList<>(chunks);
        for (int i = 0; i < chunks; i++) {
            int chunk = i;
            work.add(HASHERS.submit(() -> hashChunk(memory, size, chunk, digests)));
        }
        try {
            for (Future<?> f : work) {
                f.get();
            }
        } catch (InterruptedException e) {
            work.forEach(f -> f.cancel(true));
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while digesting guest RAM", e);
        } catch (ExecutionException e) {
            work.forEach(f -> f.cancel(true));
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw new IllegalStateException("cannot digest guest RAM: " + e.getCause(), e.getCause());
        }
        ByteBuffer all = ByteBuffer.allocate(chunks * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long d : digests) {
            all.putLong(d);
        }
        return XXH.hash(all.array(), 0, all.capacity(), size);
    }

    private static void hashChunk(GuestMemory memory, long size, int i, long[] digests) {
        long off = (long) i * CHUNK;
        int len = (int) Math.min(CHUNK, size - off);
        ByteBuffer buf = BUFFERS.get().clear().limit(len);
        try {
            memory.read(off, java.lang.foreign.MemorySegment.ofBuffer(buf));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        digests[i] = XXH.hash(buf, 0, len, i);
    }
}
