package dev.ferry.hypervisor;

import java.util.Arrays;

/**
 * One bit per guest page. Not synchronized: one thread fills it (a dirty-log collection), then
 * it is handed, read-only, to the threads that send the pages.
 */
public final class PageBitmap {
    private final long pageCount;
    private final long[] words;

    public PageBitmap(long pageCount) {
        if (pageCount < 0 || pageCount > (long) Integer.MAX_VALUE * 64) {
            throw new IllegalArgumentException("page count out of range: " + pageCount);
        }
        this.pageCount = pageCount;
        this.words = new long[(int) ((pageCount + 63) >>> 6)];
    }

    public long pageCount() {
        return pageCount;
    }

    public void set(long page) {
        check(page);
        words[(int) (page >>> 6)] |= 1L << page;
    }

    /** Sets pages {@code [from, to)}. */
    public void setRange(long from, long to) {
        if (from < 0 || to > pageCount || from > to) {
            throw new IndexOutOfBoundsException("range [" + from + ", " + to + ") of " + pageCount);
        }
        for (long p = from; p < to; ) {
            int w = (int) (p >>> 6);
            if ((p & 63) == 0 && to - p >= 64) {
                words[w] = -1L;
                p += 64;
            } else {
                words[w] |= 1L << p;
                p++;
            }
        }
    }

    public void clear(long page) {
        check(page);
        words[(int) (page >>> 6)] &= ~(1L << page);
    }

    /** The last set page, or -1. */
    public long lastSetBit() {
        for (int w = words.length - 1; w >= 0; w--) {
            long bits = words[w];
            if (w == words.length - 1 && (pageCount & 63) != 0) {
                bits &= (1L << pageCount) - 1; // orWord may have set bits past the end
            }
            if (bits != 0) {
                return ((long) w << 6) + 63 - Long.numberOfLeadingZeros(bits);
            }
        }
        return -1;
    }

    public boolean get(long page) {
        check(page);
        return (words[(int) (page >>> 6)] & (1L << page)) != 0;
    }

    /** ORs a 64-page word in; used by dirty logs that collect a word at a time. */
    public void orWord(int wordIndex, long bits) {
        words[wordIndex] |= bits;
    }

    public int wordCount() {
        return words.length;
    }

    public long word(int wordIndex) {
        return words[wordIndex];
    }

    public void or(PageBitmap other) {
        if (other.pageCount != pageCount) {
            throw new IllegalArgumentException("bitmaps of " + pageCount + " and " + other.pageCount + " pages");
        }
        for (int i = 0; i < words.length; i++) {
            words[i] |= other.words[i];
        }
    }

    public void clear() {
        Arrays.fill(words, 0);
    }

    public long cardinality() {
        long n = 0;
        for (long w : words) {
            n += Long.bitCount(w);
        }
        return n;
    }

    public boolean isEmpty() {
        for (long w : words) {
            if (w != 0) {
                return false;
            }
        }
        return true;
    }

    /** Counts set pages in {@code [from, to)}. */
    public int cardinality(long from, long to) {
        int n = 0;
        for (long p = nextSetBit(from); p >= 0 && p < to; p = nextSetBit(p + 1)) {
            n++;
        }
        return n;
    }

    /** The first set page at or after {@code from}, or -1. */
    public long nextSetBit(long from) {
        if (from >= pageCount) {
            return -1;
        }
        int w = (int) (from >>> 6);
        long word = words[w] & (-1L << from);
        while (true) {
            if (word != 0) {
                long page = ((long) w << 6) + Long.numberOfTrailingZeros(word);
                return page < pageCount ? page : -1;
            }
            if (++w == words.length) {
                return -1;
            }
            word = words[w];
        }
    }

    private void check(long page) {
        if (page < 0 || page >= pageCount) {
            throw new IndexOutOfBoundsException("page " + page + " of " + pageCount);
        }
    }
}
