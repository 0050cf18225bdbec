package dev.ferry.hypervisor.sim;

import dev.ferry.proto.vm.Pattern;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The contents of a page written by the simulated guest, verifiable from outside:
 *
 * <pre>
 *   offset 0   u64 page index
 *   offset 8   u64 generation (how many times the guest has written this page)
 *   offset 16  u64 checksum of bytes [24, page size)
 *   offset 24  filler derived from (page index, generation, pattern)
 * </pre>
 *
 * All values little-endian. A page the guest never wrote is all zero.
 */
public final class SimPageFormat {
    static final int HEADER = 24;
    private static final ValueLayout.OfLong LONG = ValueLayout.JAVA_LONG_UNALIGNED;
    /** Words of compressible pages come from this small vocabulary, so LZ4 finds matches. */
    private static final long[] VOCABULARY = new long[16];

    static {
        long s = 0x5DEECE66DL;
        for (int i = 0; i < VOCABULARY.length; i++) {
            s = next(s);
            VOCABULARY[i] = s * 0x2545F4914F6CDD1DL;
        }
    }

    private SimPageFormat() {}

    /** Writes generation {@code generation} of page {@code page} at {@code offset}. */
    static void write(MemorySegment memory, long offset, int pageSize, long page, long generation, Pattern pattern) {
        long seed = seed(page, generation);
        long sum = seed;
        int words = (pageSize - HEADER) / 8;
        long s = seed;
        long at = offset + HEADER;
        for (int i = 0; i < words; i++) {
            s = next(s);
            long w = pattern == Pattern.PATTERN_COMPRESSIBLE ? compressibleWord(s, i) : s * 0x2545F4914F6CDD1DL;
            memory.set(LONG, at, w);
            sum = mix(sum, w);
            at += 8;
        }
        memory.set(LONG, offset, page);
        memory.set(LONG, offset + 8, generation);
        memory.set(LONG, offset + 16, sum);
    }

    /** Generation of a valid page, 0 for a zero page, or -1 when the page is torn or foreign. */
    public static long check(MemorySegment memory, long offset, int pageSize, long page) {
        long index = memory.get(LONG, offset);
        long generation = memory.get(LONG, offset + 8);
        long checksum = memory.get(LONG, offset + 16);
        if (index == 0 && generation == 0 && checksum == 0) {
            return dev.ferry.hypervisor.memory.Pages.isZero(memory, offset, pageSize) ? 0 : -1;
        }
        if (index != page || generation <= 0) {
            return -1;
        }
        long sum = seed(page, generation);
        int words = (pageSize - HEADER) / 8;
        long at = offset + HEADER;
        for (int i = 0; i < words; i++) {
            sum = mix(sum, memory.get(LONG, at));
            at += 8;
        }
        return sum == checksum ? generation : -1;
    }

    private static long compressibleWord(long s, int i) {
        // Runs of repeated vocabulary words with an occasional literal: about 3:1 under LZ4, like heap
        // and page-cache contents.
        if ((s & 0xF) == 0) {
            return s * 0x2545F4914F6CDD1DL;
        }
        return VOCABULARY[(int) ((s >>> 8) & 0xF) ^ ((i >>> 4) & 0x3)];
    }

    private static long seed(long page, long generation) {
        long z = page * 0x9E3779B97F4A7C15L + generation * 0xBF58476D1CE4E5B9L + 0x94D049BB133111EBL;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return (z ^ (z >>> 31)) | 1;
    }

    private static long next(long s) {
        s ^= s >>> 12;
        s ^= s << 25;
        s ^= s >>> 27;
        return s;
    }

    private static long mix(long h, long w) {
        h = (h ^ w) * 0x9E3779B97F4A7C15L;
        return h ^ (h >>> 29);
    }
}
