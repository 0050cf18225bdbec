package dev.ferry.migration.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.proto.migration.Compression;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.PageRun;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.Test;

class BatchCodecTest {
    private static final int PAGE = 4096;
    private static final int WINDOW = 64;
    private final Arena arena = Arena.ofAuto();

    private MemorySegment memory(int pages) {
        return arena.allocate((long) pages * PAGE, PAGE);
    }

    private static void randomPage(MemorySegment m, long page, long seed) {
        Random r = new Random(seed);
        for (int i = 0; i < PAGE; i += 8) {
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, page * PAGE + i, r.nextLong());
        }
    }

    private static void textPage(MemorySegment m, long page) {
        byte[] text = "the quick brown fox jumps over the lazy dog; ".getBytes();
        for (int i = 0; i < PAGE; i++) {
            m.set(ValueLayout.JAVA_BYTE, page * PAGE + i, text[(int) ((i + page) % text.length)]);
        }
    }

    private static BatchCodec.Encoded encode(BatchCodec codec, MemorySegment src, long base, PageBitmap sel, int round)
            throws Exception {
        return codec.encode(
                (off, dst) -> dst.copyFrom(src.asSlice(off, dst.byteSize())), src.byteSize() / PAGE, base, sel, round);
    }

    /** Decodes into {@code dst}, like the receiver does. */
    private static BatchCodec.Applied apply(BatchCodec codec, PageBatch b, MemorySegment dst) throws Exception {
        return codec.decode(b, dst.byteSize() / PAGE, new BatchCodec.PageSink() {
            @Override
            public void write(long firstPage, MemorySegment pages) {
                MemorySegment.copy(pages, 0, dst, firstPage * PAGE, pages.byteSize());
            }

            @Override
            public void zero(long first, int count) {
                dst.asSlice(first * PAGE, (long) count * PAGE).fill((byte) 0);
            }
        });
    }

    @Test
    void roundTripsMixedPagesWithZeroRunsAndNoZeroData() throws Exception {
        MemorySegment src = memory(WINDOW * 2);
        for (int p = 0; p < WINDOW; p++) {
            if (p % 3 == 0) {
                randomPage(src, p, p);
            } else if (p % 3 == 1) {
                textPage(src, p);
            }
        }
        BatchCodec sender = new BatchCodec(PAGE, WINDOW);
        BatchCodec.Encoded e = encode(sender, src, 0, null, 0);
        assertEquals(WINDOW, e.pages());
        assertEquals(21, e.zeroPages());
        assertEquals(e.dataPages() * PAGE, e.batch().getRawLength());
        assertTrue(e.batch().getZeroRunsCount() > 0);

        MemorySegment dst = memory(WINDOW * 2);
        dst.fill((byte) 7);
        BatchCodec.Applied a = apply(new BatchCodec(PAGE, WINDOW), e.batch(), dst);
        assertEquals(43, a.dataPages());
        assertEquals(21, a.zeroPages());
        assertEquals(-1, src.asSlice(0, (long) WINDOW * PAGE).mismatch(dst.asSlice(0, (long) WINDOW * PAGE)));
    }

    @Test
    void compressibleDataIsCompressedAndIncompressibleIsSentRaw() throws Exception {
        MemorySegment text = memory(WINDOW);
        for (int p = 0; p < WINDOW; p++) {
            textPage(text, p);
        }
        BatchCodec.Encoded c = encode(new BatchCodec(PAGE, WINDOW), text, 0, null, 1);
        assertEquals(Compression.COMPRESSION_LZ4, c.batch().getCompression());
        assertTrue(c.wireBytes() < WINDOW * PAGE / 4, "wire bytes " + c.wireBytes());

        MemorySegment noise = memory(WINDOW);
        for (int p = 0; p < WINDOW; p++) {
            randomPage(noise, p, 100 + p);
        }
        BatchCodec.Encoded r = encode(new BatchCodec(PAGE, WINDOW), noise, 0, null, 1);
        assertEquals(Compression.COMPRESSION_RAW, r.batch().getCompression());
        assertEquals(WINDOW * PAGE, r.batch().getData().size());
    }

    @Test
    void onlySelectedPagesAreSentAndAnEmptySelectionSendsNothing() throws Exception {
        MemorySegment src = memory(WINDOW * 2);
        for (int p = 0; p < WINDOW * 2; p++) {
            randomPage(src, p, p);
        }
        PageBitmap sel = new PageBitmap(WINDOW * 2);
        sel.set(WINDOW + 5);
        sel.set(WINDOW + 9);
        BatchCodec codec = new BatchCodec(PAGE, WINDOW);
        assertNull(encode(codec, src, 0, sel, 2));
        BatchCodec.Encoded e = encode(codec, src, WINDOW, sel, 2);
        assertNotNull(e);
        assertEquals(2, e.dataPages());
        MemorySegment dst = memory(WINDOW * 2);
        apply(new BatchCodec(PAGE, WINDOW), e.batch(), dst);
        assertEquals(-1, src.asSlice((WINDOW + 5L) * PAGE, PAGE).mismatch(dst.asSlice((WINDOW + 5L) * PAGE, PAGE)));
        assertTrue(dst.asSlice((WINDOW + 6L) * PAGE, PAGE).mismatch(src.asSlice((WINDOW + 6L) * PAGE, PAGE)) >= 0);
    }

    @Test
    void lastWindowMayBeShorterThanAWindow() throws Exception {
        MemorySegment src = memory(WINDOW + 10);
        for (int p = 0; p < WINDOW + 10; p++) {
            randomPage(src, p, p);
        }
        BatchCodec.Encoded e = encode(new BatchCodec(PAGE, WINDOW), src, WINDOW, null, 0);
        assertEquals(10, e.dataPages());
        MemorySegment dst = memory(WINDOW + 10);
        apply(new BatchCodec(PAGE, WINDOW), e.batch(), dst);
        assertEquals(-1, src.asSlice((long) WINDOW * PAGE).mismatch(dst.asSlice((long) WINDOW * PAGE)));
    }

    private PageBatch sample() throws Exception {
        MemorySegment src = memory(WINDOW);
        for (int p = 0; p < WINDOW; p += 2) {
            textPage(src, p);
        }
        return encode(new BatchCodec(PAGE, WINDOW), src, 0, null, 3).batch();
    }

    /** Decoding a bad batch must throw and leave memory untouched. */
    private void assertRejected(PageBatch bad, String expectedText) {
        MemorySegment dst = memory(WINDOW);
        dst.fill((byte) 9);
        MalformedFrameException e =
                assertThrows(MalformedFrameException.class, () -> apply(new BatchCodec(PAGE, WINDOW), bad, dst));
        assertTrue(e.getMessage().contains(expectedText), e.getMessage());
        for (long i = 0; i < dst.byteSize(); i++) {
            if (dst.get(ValueLayout.JAVA_BYTE, i) != 9) {
                throw new AssertionError("a rejected batch wrote memory at " + i);
            }
        }
    }

    @Test
    void checksumCatchesCorruptedDataAndHeaders() throws Exception {
        PageBatch good = sample();
        byte[] data = good.getData().toByteArray();
        PageBatch rawGood = good.getCompression() == Compression.COMPRESSION_RAW ? good : null;
        // Corrupt a literal byte of the compressed stream's last block: still decodes, checksum differs.
        data[data.length - 1] ^= 0x01;
        PageBatch corrupted =
                good.toBuilder().setData(ByteString.copyFrom(data)).build();
        MemorySegment dst = memory(WINDOW);
        assertThrows(MalformedFrameException.class, () -> apply(new BatchCodec(PAGE, WINDOW), corrupted, dst));
        assertRejected(good.toBuilder().setRound(4).build(), "checksum mismatch");
        assertRejected(good.toBuilder().setChecksum(good.getChecksum() ^ 1).build(), "checksum mismatch");
        assertTrue(rawGood == null || rawGood.getRawLength() > 0);
    }

    @Test
    void rawDataCorruptionIsCaughtByTheChecksum() throws Exception {
        MemorySegment src = memory(WINDOW);
        for (int p = 0; p < WINDOW; p++) {
            randomPage(src, p, p);
        }
        PageBatch raw = encode(new BatchCodec(PAGE, WINDOW), src, 0, null, 0).batch();
        assertEquals(Compression.COMPRESSION_RAW, raw.getCompression());
        byte[] data = raw.getData().toByteArray();
        data[12345] ^= 0x40;
        assertRejected(raw.toBuilder().setData(ByteString.copyFrom(data)).build(), "checksum mismatch");
    }

    @Test
    void malformedBatchesAreRejectedWithTheReason() throws Exception {
        PageBatch good = sample();
        assertRejected(good.toBuilder().setBasePage(3).build(), "not a window start");
        assertRejected(good.toBuilder().setBasePage(WINDOW).build(), "not a window start");
        assertRejected(
                good.toBuilder().setDataPages(ByteString.copyFrom(new byte[3])).build(), "bitmap");
        assertRejected(good.toBuilder().setRawLength(good.getRawLength() + PAGE).build(), "raw length");
        assertRejected(good.toBuilder().setCompressionValue(0).build(), "unknown compression");
        assertRejected(
                good.toBuilder()
                        .setCompression(Compression.COMPRESSION_LZ4)
                        .setData(ByteString.copyFrom(new byte[] {(byte) 0xF0, 1, 2}))
                        .build(),
                "LZ4");
        assertRejected(
                good.toBuilder()
                        .setCompression(Compression.COMPRESSION_RAW)
                        .setData(ByteString.copyFrom(new byte[5]))
                        .build(),
                "raw data");
        assertRejected(
                good.toBuilder()
                        .clearZeroRuns()
                        .addZeroRuns(PageRun.newBuilder().setOffset(0).setCount(1))
                        .build(),
                "both data and zero");
        assertRejected(
                good.toBuilder()
                        .addZeroRuns(PageRun.newBuilder().setOffset(63).setCount(5))
                        .build(),
                "out of window");
    }

    /**
     * Protobuf's uint32 arrives in Java as an int: a run of 2^31 pages read as Integer.MIN_VALUE made
     * offset + count negative, so it passed the window check, the batch was accepted, and the pages
     * the run named kept whatever stale contents they had.
     */
    @Test
    void aZeroRunOfTwoToThe31PagesIsRefusedNotTakenAsNegative() {
        PageBatch bad = HostileBatches.seal(
                PageBatch.newBuilder()
                        .setRound(1)
                        .setBasePage(0)
                        .setDataPages(ByteString.copyFrom(new byte[WINDOW / 8]))
                        .addZeroRuns(PageRun.newBuilder().setOffset(0).setCount(1 << 31))
                        .setCompression(Compression.COMPRESSION_RAW)
                        .setRawLength(0),
                PAGE,
                WINDOW,
                new byte[0]);
        assertRejected(bad, "zero run 0+2147483648");
    }

    /** The same mistake let a run of 2^32 - 1 pages (-1) end before it started and hide an overlap. */
    @Test
    void aZeroRunOfTwoToThe32MinusOnePagesIsRefusedNotTakenAsNegative() {
        PageBatch bad = HostileBatches.seal(
                PageBatch.newBuilder()
                        .setRound(1)
                        .setBasePage(0)
                        .setDataPages(ByteString.copyFrom(new byte[WINDOW / 8]))
                        .addZeroRuns(PageRun.newBuilder().setOffset(0).setCount(4))
                        .addZeroRuns(PageRun.newBuilder().setOffset(10).setCount(-1))
                        .addZeroRuns(PageRun.newBuilder().setOffset(9).setCount(1))
                        .setCompression(Compression.COMPRESSION_RAW)
                        .setRawLength(0),
                PAGE,
                WINDOW,
                new byte[0]);
        assertRejected(bad, "zero run 10+4294967295");
    }

    /** A well-formed hand-sealed batch decodes: the tests above fail for their counts, not their checksums. */
    @Test
    void aHandSealedBatchWithValidRunsDecodes() throws Exception {
        PageBatch ok = HostileBatches.seal(
                PageBatch.newBuilder()
                        .setRound(1)
                        .setBasePage(0)
                        .setDataPages(ByteString.copyFrom(new byte[WINDOW / 8]))
                        .addZeroRuns(PageRun.newBuilder().setOffset(0).setCount(4))
                        .addZeroRuns(PageRun.newBuilder().setOffset(10).setCount(WINDOW - 10))
                        .setCompression(Compression.COMPRESSION_RAW)
                        .setRawLength(0),
                PAGE,
                WINDOW,
                new byte[0]);
        MemorySegment dst = memory(WINDOW);
        dst.fill((byte) 9);
        BatchCodec.Applied a = apply(new BatchCodec(PAGE, WINDOW), ok, dst);
        assertEquals(WINDOW - 6, a.zeroPages());
        assertEquals(0, dst.get(ValueLayout.JAVA_BYTE, 0));
        assertEquals(9, dst.get(ValueLayout.JAVA_BYTE, 4L * PAGE));
    }

    @Test
    void aWindowKnownToBeAHoleIsSentAsZeroRunsWithoutBeingRead() throws Exception {
        MemorySegment src = memory(WINDOW * 2);
        randomPage(src, WINDOW + 3, 7);
        int[] reads = {0};
        BatchCodec.PageSource holes = new BatchCodec.PageSource() {
            @Override
            public void read(long offset, MemorySegment dst) {
                reads[0]++;
                dst.copyFrom(src.asSlice(offset, dst.byteSize()));
            }

            @Override
            public long nextData(long offset) {
                return Math.max(offset, (WINDOW + 3L) * PAGE);
            }
        };
        BatchCodec codec = new BatchCodec(PAGE, WINDOW);
        BatchCodec.Encoded hole = codec.encode(holes, WINDOW * 2, 0, null, 0);
        assertEquals(0, reads[0], "a hole is not read");
        assertEquals(WINDOW, hole.zeroPages());
        assertEquals(0, hole.dataPages());
        BatchCodec.Encoded data = codec.encode(holes, WINDOW * 2, WINDOW, null, 0);
        assertEquals(1, data.dataPages());

        MemorySegment dst = memory(WINDOW * 2);
        dst.fill((byte) 5);
        BatchCodec receiver = new BatchCodec(PAGE, WINDOW);
        apply(receiver, hole.batch(), dst);
        apply(receiver, data.batch(), dst);
        assertEquals(-1, src.mismatch(dst));
    }

    /**
     * Regression (the receiver fuzz soak, seed 20261207, case 138): sealing a hand-made batch whose
     * bitmap is ten windows long overflowed the checksum's header buffer in the test's own mutator.
     * The checksum is now defined for any batch; the receiver still refuses this one for its bitmap.
     */
    @Test
    void aHandMadeBatchWithAnOversizedHeaderCanBeSealedAndIsRefused() {
        PageBatch.Builder b = PageBatch.newBuilder()
                .setRound(0)
                .setBasePage(0)
                .setDataPages(ByteString.copyFrom(new byte[10 * 256 / 8]))
                .setRawLength(0)
                .setCompression(Compression.COMPRESSION_RAW);
        for (int i = 0; i < 300; i++) {
            b.addZeroRuns(PageRun.newBuilder().setOffset(i).setCount(1));
        }
        PageBatch sealed = HostileBatches.seal(b, 4096, 256, new byte[0]);
        assertNotNull(sealed);
        BatchCodec codec = new BatchCodec(4096, 256);
        assertThrows(
                MalformedFrameException.class,
                () -> codec.decode(sealed, 1024, new BatchCodec.PageSink() {
                    @Override
                    public void write(long firstPage, MemorySegment pages) {}

                    @Override
                    public void zero(long first, int count) {}
                }));
    }
}
