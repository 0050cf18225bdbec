package dev.ferry.migration;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.stream.IntStream;
import net.jpountz.xxhash.XXHash64;
import net.jpountz.xxhash.XXHashFactory;

/**
 * A digest of all of guest RAM, the same on both hosts when their memory is equal: xxHash64 of
 * every 64 MiB chunk (in parallel), then xxHash64 of the chunk digests in order.
 */
public final class RamDigest {
  private static final long CHUNK = 64L << 20;
  private static final XXHash64 XXH = XXHashFactory.fastestInstance().hash64();

  private RamDigest() {}

  public static long of(MemorySegment ram) {
    int chunks = (int) ((ram.byteSize() + CHUNK - 1) / CHUNK);
    long[] digests = new long[chunks];
    IntStream.range(0, chunks).parallel().forEach(i -> {
      long off = i * CHUNK;
      long len = Math.min(CHUNK, ram.byteSize() - off);
      ByteBuffer slice = ram.asSlice(off, len).asByteBuffer();
      digests[i] = XXH.hash(slice, 0, (int) len, i);
    });
    ByteBuffer all = ByteBuffer.allocate(chunks * 8).order(ByteOrder.LITTLE_ENDIAN);
    for (long d : digests) {
      all.putLong(d);
    }
    return XXH.hash(all.array(), 0, all.capacity(), ram.byteSize());
  }
}
