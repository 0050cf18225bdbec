package dev.ferry.migration;

import dev.ferry.hypervisor.GuestMemory;

/**
 * A digest of all of guest RAM, the same on both hosts when their memory is equal: the root of
 * {@link RegionDigests}' tree (xxHash64 of every 16 KiB leaf, of each 16 MiB region's leaf
 * digests, then of the region digests in order). Read from scratch here; {@link RegionDigests}
 * keeps the same value current as memory changes.
 */
public final class RamDigest {
    private RamDigest() {}

    public static long of(GuestMemory memory) {
        RegionDigests d = new RegionDigests(memory.sizeBytes());
        d.refresh(memory);
        return d.combined();
    }
}
