package dev.ferry.migration.wire;

import com.google.protobuf.ByteString;
import dev.ferry.proto.migration.Compression;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.PageRun;

/**
 * Hand-made page batches for what a hostile or buggy sender can do: a sender computes its own
 * checksums, so a batch that lies about its counts still carries a valid one. Main code, not a
 * test's: the agent's own tests and the chaos suite's hostile source (a compromised host's
 * program, run across hosts) send the same batches.
 */
public final class HostileBatches {
    private HostileBatches() {}

    /** {@code b} with the checksum over its header and {@code data} (uncompressed), as a sender would set it. */
    public static PageBatch seal(PageBatch.Builder b, int pageSize, int windowPages, byte[] data) {
        long sum = new BatchCodec(pageSize, windowPages).checksum(b, data, 0, data.length);
        return b.setChecksum(sum).build();
    }

    /**
     * Window {@code window} of round {@code round}, all zero pages, sealed: {@code pages} pages from
     * the window's start in one zero run (a whole window is {@code windowPages}; any other count,
     * 2^31 and more included as a uint32 on the wire, is what a hostile sender may claim).
     */
    public static PageBatch zeroWindow(long window, int round, int pages, int pageSize, int windowPages) {
        return seal(
                PageBatch.newBuilder()
                        .setRound(round)
                        .setBasePage(window * windowPages)
                        .setDataPages(ByteString.copyFrom(new byte[windowPages / 8]))
                        .addZeroRuns(PageRun.newBuilder().setOffset(0).setCount(pages))
                        .setCompression(Compression.COMPRESSION_RAW)
                        .setRawLength(0),
                pageSize,
                windowPages,
                new byte[0]);
    }
}
