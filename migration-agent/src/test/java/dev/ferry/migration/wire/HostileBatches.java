package dev.ferry.migration.wire;

import dev.ferry.proto.migration.PageBatch;

/**
 * Hand-made page batches for tests of what a hostile or buggy sender can do: a sender computes its
 * own checksums, so a batch that lies about its counts still carries a valid one.
 */
public final class HostileBatches {
    private HostileBatches() {}

    /** {@code b} with the checksum over its header and {@code data} (uncompressed), as a sender would set it. */
    public static PageBatch seal(PageBatch.Builder b, int pageSize, int windowPages, byte[] data) {
        long sum = new BatchCodec(pageSize, windowPages).checksum(b, data, 0, data.length);
        return b.setChecksum(sum).build();
    }
}
