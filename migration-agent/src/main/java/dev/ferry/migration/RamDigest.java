package dev.ferry.migration;

import dev.ferry.hypervisor.GuestMemory;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.ForkJoinPool;
import java.util.stream.IntStream;
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

    private RamDigest() {}

    public static long of(GuestMemory memory) {
        long size = memory.sizeBytes();
        int chunks = (int) ((size + CHUNK - 1) / CHUNK);
        long[] digests = new long[chunks];
        // Always on the common pool's workers, never on the caller: each thread that hashes keeps a
        // 16 MiB direct buffer, and a caller is often a thread of its own (a destination's switchover
        // thread per migration) whose buffer then lingered in native memory until a full GC: the
        // receiver fuzz saw 480 MiB of them. The pool's few threads reuse theirs.
        ForkJoinPool.commonPool()
                .submit(() -> hashChunks(memory, size, digests))
                .join();
        ByteBuffer all = ByteBuffer.allocate(chunks * 8).order(ByteOrder.LITTLE_ENDIAN);
        for (long d : digests) {
            all.putLong(d);
        }
        return XXH.hash(all.array(), 0, all.capacity(), size);
    }

    private static void hashChunks(GuestMemory memory, long size, long[] digests) {
        int chunks = digests.length;
        IntStream.range(0, chunks).parallel().forEach(i -> {
            long off = (long) i * CHUNK;
            int len = (int) Math.min(CHUNK, size - off);
            ByteBuffer buf = BUFFERS.get().clear().limit(len);
            try {
                memory.read(off, java.lang.foreign.MemorySegment.ofBuffer(buf));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            digests[i] = XXH.hash(buf, 0, len, i);
        });
    }
}
