package dev.ferry.migration;

import dev.ferry.hypervisor.GuestMemory;
import java.lang.foreign.MemorySegment;

/**
 * Guest memory over a Java array with 4 KiB pages: for tests of what reads and writes guest RAM
 * (digests, the receiver) without a hypervisor. Not thread-safe beyond what array copies are.
 */
public final class ArrayGuestMemory implements GuestMemory {
    public static final int PAGE = 4096;

    private final byte[] ram;
    private final MemorySegment seg;

    public ArrayGuestMemory(byte[] ram) {
        this.ram = ram;
        this.seg = MemorySegment.ofArray(ram);
    }

    public byte[] bytes() {
        return ram;
    }

    @Override
    public long sizeBytes() {
        return ram.length;
    }

    @Override
    public int pageSize() {
        return PAGE;
    }

    @Override
    public void read(long offset, MemorySegment dst) {
        MemorySegment.copy(seg, offset, dst, 0, dst.byteSize());
    }

    @Override
    public void write(long offset, MemorySegment src) {
        MemorySegment.copy(src, 0, seg, offset, src.byteSize());
    }

    @Override
    public void discard(long firstPage, long pages) {
        seg.asSlice(firstPage * PAGE, pages * PAGE).fill((byte) 0);
    }

    @Override
    public MemorySegment segment() {
        return seg;
    }
}
