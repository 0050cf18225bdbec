package dev.ferry.hypervisor;

import java.io.IOException;
import java.lang.foreign.MemorySegment;

/**
 * Guest RAM as the agent sees it: the file the hypervisor maps, read and written by the agent
 * with positional I/O.
 *
 * <p>Bulk transfer goes through {@link #read} and {@link #write}, not through a mapping: on these
 * machines every first touch of a page through a mapping costs a page fault of several
 * microseconds (about 3 s per GiB written, 1 s per GiB read), while pread and pwrite move a GiB
 * of tmpfs in 0.1-0.2 s. The page cache is the same either way, so the hypervisor's own mapping
 * sees every write at once.
 */
public interface GuestMemory {
    long sizeBytes();

    int pageSize();

    default long pageCount() {
        return sizeBytes() / pageSize();
    }

    /** Fills {@code dst} (native memory or a Java array) with guest bytes starting at {@code offset}. */
    void read(long offset, MemorySegment dst) throws IOException;

    /** Writes all of {@code src} (native memory or a Java array) into guest memory at {@code offset}. */
    void write(long offset, MemorySegment src) throws IOException;

    /**
     * The first byte offset at or after {@code offset} that may hold non-zero data; {@link
     * #sizeBytes()} when everything after is known zero (memory never written). A conservative
     * default: everything may hold data.
     */
    default long nextData(long offset) throws IOException {
        return offset;
    }

    /** Makes pages read as zero and frees their backing memory. */
    void discard(long firstPage, long pages) throws IOException;

    /** A read-write mapping of all of guest RAM, for drivers and checks that need one (mapped on first use). */
    MemorySegment segment();
}
