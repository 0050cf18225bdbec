package dev.ferry.migration;

import dev.ferry.hypervisor.GuestMemory;

/**
 * A digest of all of guest RAM, the same on both hosts when their memory is equal: xxHash64 of
 * every 16 MiB region (regions in parallel), then xxHash64 of the region digests in order. Read
 * from scratch; {@link RegionDigests} keeps the same value current as memory changes.
 */
public final class RamDigest {
    private RamDigest() {}

    public static long of(GuestMemory memory) {
        RegionDigests d = new RegionDigests(memory.sizeBytes());
        d.refresh(memory);
        return d.combined();
    }
}
