package dev.ferry.migration.wire;

import com.google.protobuf.ByteOutput;
import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.proto.migration.Compression;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.PageRun;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import net.jpountz.lz4.LZ4Compressor;
import net.jpountz.lz4.LZ4Factory;
import net.jpountz.lz4.LZ4SafeDecompressor;
import net.jpountz.xxhash.XXHash64;
import net.jpountz.xxhash.XXHashFactory;

/**
 * Encodes guest pages of one window into a {@link PageBatch} and decodes them back into guest
 * memory. One codec per lane: it owns its (direct) scratch buffers and is not thread-safe.
 *
 * <p>Zero pages travel as runs, never as data. Data is LZ4-compressed when that pays (see
 * {@link CompressionGovernor}) and raw otherwise. The checksum is xxHash64 of the uncompressed
 * data, seeded with xxHash64 of the header fields, so a corrupted header is caught as surely as
 * corrupted data.
 */
public final class BatchCodec {
    private static final long HEADER_SEED = 0x46455252595F5631L; // "FERRY_V1"
    private static final LZ4Factory LZ4 = LZ4Factory.fastestInstance();
    private static final XXHash64 XXH = XXHashFactory.fastestInstance().hash64();

    /** Where the encoder reads guest pages from. */
    @FunctionalInterface
    public interface PageSource {
        /** Fills {@code dst} (a Java array segment) with guest bytes starting at {@code offset}. */
        void read(long offset, MemorySegment dst) throws IOException;

        /** The first offset at or after {@code offset} that may hold data; anything before it is known zero. */
        default long nextData(long offset) throws IOException {
            return offset;
        }
    }

    /** Where decoded pages go. */
    public interface PageSink {
        /** {@code pages} (a whole number of pages) are the new contents starting at page {@code firstPage}. */
        void write(long firstPage, MemorySegment pages) throws IOException;

        /** Pages {@code [first, first + count)} are zero. */
        void zero(long first, int count) throws IOException;
    }

    private final int pageSize;
    private final int windowPages;
    private final LZ4Compressor compressor = LZ4.fastCompressor();
    private final LZ4SafeDecompressor decompressor = LZ4.safeDecompressor();
    private final CompressionGovernor governor = new CompressionGovernor();
    /** Decompressed data of the batch being decoded. */
    private final byte[] raw;

    private final byte[] compressed;
    private final ByteBuffer header;
    private final MemorySegment zeroPage;

    public BatchCodec(int pageSize, int windowPages) {
        if (windowPages <= 0 || windowPages % 8 != 0) {
            throw new IllegalArgumentException("window of " + windowPages + " pages is not a positive multiple of 8");
        }
        this.pageSize = pageSize;
        this.windowPages = windowPages;
        this.raw = new byte[windowPages * pageSize];
        this.compressed = new byte[compressor.maxCompressedLength(windowPages * pageSize)];
        this.zeroPage = MemorySegment.ofArray(new byte[pageSize]);
        this.header = ByteBuffer.allocate(4 + 8 + windowPages / 8 + 4 + 4 + 8 * windowPages)
                .order(ByteOrder.LITTLE_ENDIAN);
    }

    public int windowPages() {
        return windowPages;
    }

    /** What {@link #encode} put in a batch, for accounting. */
    public record Encoded(PageBatch batch, int pages, int dataPages, int zeroPages, int wireBytes) {}

    /**
     * Encodes the pages of the window starting at {@code basePage} that are set in
     * {@code selection} (all pages of the window when {@code selection} is null). Returns null when
     * the window has no selected page.
     *
     * <p>Pages are read straight into a fresh array that, when the batch goes raw, becomes the
     * batch's data without another copy: at a gigabyte per second every copy counts.
     */
    public Encoded encode(PageSource source, long pageCount, long basePage, PageBitmap selection, int round)
            throws IOException {
        int span = (int) Math.min(windowPages, pageCount - basePage);
        int selected = 0;
        for (int i = 0; i < span; i++) {
            if (isSelected(selection, basePage + i)) {
                selected++;
            }
        }
        if (selected == 0) {
            return null;
        }
        if (source.nextData(basePage * pageSize) >= (basePage + span) * (long) pageSize) {
            // The whole window is memory never written: zero, known without reading it.
            return zeroWindow(basePage, span, selection, round);
        }
        byte[] data = new byte[selected * pageSize];
        MemorySegment dataSeg = MemorySegment.ofArray(data);
        // Read each run of selected pages with one pread, packed in page order.
        int packed = 0;
        for (int i = 0; i < span; ) {
            if (!isSelected(selection, basePage + i)) {
                i++;
                continue;
            }
            int runEnd = i + 1;
            while (runEnd < span && isSelected(selection, basePage + runEnd)) {
                runEnd++;
            }
            int n = runEnd - i;
            source.read((basePage + i) * pageSize, dataSeg.asSlice((long) packed * pageSize, (long) n * pageSize));
            packed += n;
            i = runEnd;
        }
        byte[] bitmap = new byte[windowPages / 8];
        PageBatch.Builder b = PageBatch.newBuilder().setRound(round).setBasePage(basePage);
        int dataPages = 0;
        int zeroPages = 0;
        int runStart = -1;
        int slot = 0;
        for (int i = 0; i < span; i++) {
            boolean sel = isSelected(selection, basePage + i);
            boolean zero = false;
            if (sel) {
                long off = (long) slot * pageSize;
                zero = MemorySegment.mismatch(dataSeg, off, off + pageSize, zeroPage, 0, pageSize) < 0;
                if (!zero) {
                    if (slot != dataPages) {
                        System.arraycopy(data, slot * pageSize, data, dataPages * pageSize, pageSize);
                    }
                    bitmap[i >>> 3] |= (byte) (1 << (i & 7));
                    dataPages++;
                }
                slot++;
            }
            if (zero) {
                if (runStart < 0) {
                    runStart = i;
                }
                zeroPages++;
            } else if (runStart >= 0) {
                b.addZeroRuns(PageRun.newBuilder().setOffset(runStart).setCount(i - runStart));
                runStart = -1;
            }
        }
        if (runStart >= 0) {
            b.addZeroRuns(PageRun.newBuilder().setOffset(runStart).setCount(span - runStart));
        }
        int rawLength = dataPages * pageSize;
        b.setDataPages(ByteString.copyFrom(bitmap)).setRawLength(rawLength);
        b.setChecksum(checksum(b, data, 0, rawLength));
        if (rawLength > 0 && governor.shouldTry()) {
            long t = System.nanoTime();
            int n = compressor.compress(data, 0, rawLength, compressed, 0, compressed.length);
            governor.recordCompression(rawLength, n, System.nanoTime() - t);
            if (governor.useCompressed(rawLength, n)) {
                b.setCompression(Compression.COMPRESSION_LZ4).setData(ByteString.copyFrom(compressed, 0, n));
            }
        }
        if (b.getCompression() != Compression.COMPRESSION_LZ4) {
            // The array is this batch's alone from here on: gRPC may keep the message after onNext.
            b.setCompression(Compression.COMPRESSION_RAW).setData(UnsafeByteOperations.unsafeWrap(data, 0, rawLength));
        }
        PageBatch batch = b.build();
        return new Encoded(batch, dataPages + zeroPages, dataPages, zeroPages, batch.getSerializedSize());
    }

    /** Tells the compression decision how long the lane took to send a batch of {@code wireBytes}. */
    public void recordSend(long wireBytes, long nanos) {
        governor.recordSend(wireBytes, nanos);
    }

    private Encoded zeroWindow(long basePage, int span, PageBitmap selection, int round) {
        PageBatch.Builder b = PageBatch.newBuilder()
                .setRound(round)
                .setBasePage(basePage)
                .setDataPages(ByteString.copyFrom(new byte[windowPages / 8]))
                .setRawLength(0);
        int zero = 0;
        int runStart = -1;
        for (int i = 0; i <= span; i++) {
            boolean sel = i < span && isSelected(selection, basePage + i);
            if (sel) {
                zero++;
                if (runStart < 0) {
                    runStart = i;
                }
            } else if (runStart >= 0) {
                b.addZeroRuns(PageRun.newBuilder().setOffset(runStart).setCount(i - runStart));
                runStart = -1;
            }
        }
        b.setChecksum(checksum(b, new byte[0], 0, 0)).setCompression(Compression.COMPRESSION_RAW);
        PageBatch batch = b.build();
        return new Encoded(batch, zero, 0, zero, batch.getSerializedSize());
    }

    private static boolean isSelected(PageBitmap selection, long page) {
        return selection == null || selection.get(page);
    }

    /** What {@link #decode} applied. */
    public record Applied(int dataPages, int zeroPages) {}

    /**
     * Checks a batch completely (sizes, runs, decompression, checksum) before anything is written,
     * then writes its pages into {@code sink}. Nothing is applied from a batch that fails.
     */
    public Applied decode(PageBatch batch, long pageCount, PageSink sink) throws MalformedFrameException, IOException {
        // Protobuf's uint32 and uint64 arrive as Java int and long: a value of 2^31 (2^63) or more is
        // negative and would pass every "x < limit" check. Every count and offset is read unsigned.
        long base = batch.getBasePage();
        if (Long.remainderUnsigned(base, windowPages) != 0 || Long.compareUnsigned(base, pageCount) >= 0) {
            throw new MalformedFrameException(
                    "batch base page " + Long.toUnsignedString(base) + " is not a window start below " + pageCount);
        }
        int span = (int) Math.min(windowPages, pageCount - base);
        ByteString bitmapBytes = batch.getDataPages();
        if (bitmapBytes.size() != windowPages / 8) {
            throw new MalformedFrameException(
                    "page bitmap of " + bitmapBytes.size() + " bytes, expected " + windowPages / 8);
        }
        byte[] bitmap = bitmapBytes.toByteArray();
        int dataPages = 0;
        for (int i = 0; i < windowPages; i++) {
            if ((bitmap[i >>> 3] & (1 << (i & 7))) != 0) {
                if (i >= span) {
                    throw new MalformedFrameException("page " + (base + i) + " is past the end of guest memory");
                }
                dataPages++;
            }
        }
        // Runs are ordered, disjoint, non-empty and inside the window, so there are at most span of
        // them and their pages add up to at most span.
        int zeroPages = 0;
        long lastEnd = 0;
        for (PageRun run : batch.getZeroRunsList()) {
            long offset = Integer.toUnsignedLong(run.getOffset());
            long count = Integer.toUnsignedLong(run.getCount());
            long end = offset + count;
            if (count == 0 || offset < lastEnd || end > span) {
                throw new MalformedFrameException(
                        "zero run " + offset + "+" + count + " out of order or out of window of " + span + " pages");
            }
            for (long i = offset; i < end; i++) {
                if ((bitmap[(int) (i >>> 3)] & (1 << (i & 7))) != 0) {
                    throw new MalformedFrameException("page " + (base + i) + " is both data and zero");
                }
            }
            zeroPages += (int) count;
            lastEnd = end;
        }
        if ((long) dataPages * pageSize != Integer.toUnsignedLong(batch.getRawLength())) {
            throw new MalformedFrameException("raw length " + Integer.toUnsignedString(batch.getRawLength()) + " for "
                    + dataPages + " data pages");
        }
        int rawLength = dataPages * pageSize;
        Backing data = Backing.of(batch.getData());
        byte[] pages;
        int pagesOffset;
        switch (batch.getCompression()) {
            case COMPRESSION_RAW -> {
                if (data.length() != rawLength) {
                    throw new MalformedFrameException("raw data of " + data.length() + " bytes, expected " + rawLength);
                }
                pages = data.array();
                pagesOffset = data.offset();
            }
            case COMPRESSION_LZ4 -> {
                int n;
                try {
                    n = decompressor.decompress(data.array(), data.offset(), data.length(), raw, 0, raw.length);
                } catch (net.jpountz.lz4.LZ4Exception e) {
                    throw new MalformedFrameException("LZ4 data does not decompress: " + e.getMessage());
                }
                if (n != rawLength) {
                    throw new MalformedFrameException(
                            "LZ4 data decompressed to " + n + " bytes, expected " + rawLength);
                }
                pages = raw;
                pagesOffset = 0;
            }
            default -> throw new MalformedFrameException("unknown compression " + batch.getCompressionValue());
        }
        long expected = checksum(batch.toBuilder(), pages, pagesOffset, rawLength);
        if (expected != batch.getChecksum()) {
            throw new MalformedFrameException(String.format(
                    "checksum mismatch in batch at page %d (round %d): got %016x, computed %016x",
                    base, Integer.toUnsignedLong(batch.getRound()), batch.getChecksum(), expected));
        }
        MemorySegment src = MemorySegment.ofArray(pages);
        // Contiguous data pages go out in one write each.
        long at = pagesOffset;
        for (int i = 0; i < span; ) {
            if ((bitmap[i >>> 3] & (1 << (i & 7))) == 0) {
                i++;
                continue;
            }
            int runEnd = i + 1;
            while (runEnd < span && (bitmap[runEnd >>> 3] & (1 << (runEnd & 7))) != 0) {
                runEnd++;
            }
            long len = (long) (runEnd - i) * pageSize;
            sink.write(base + i, src.asSlice(at, len));
            at += len;
            i = runEnd;
        }
        for (PageRun run : batch.getZeroRunsList()) {
            // Checked above: inside the window, so both fit an int as non-negative values.
            sink.zero(base + run.getOffset(), run.getCount());
        }
        return new Applied(dataPages, zeroPages);
    }

    /** The array behind a ByteString, without a copy when it has one (it does once parsed with aliasing). */
    private record Backing(byte[] array, int offset, int length) {
        static Backing of(ByteString bytes) throws IOException {
            Backing[] found = new Backing[1];
            int[] calls = {0};
            UnsafeByteOperations.unsafeWriteTo(bytes, new ByteOutput() {
                @Override
                public void write(byte value) {
                    calls[0] += 2;
                }

                @Override
                public void write(byte[] value, int offset, int length) {
                    writeLazy(value, offset, length);
                }

                @Override
                public void writeLazy(byte[] value, int offset, int length) {
                    calls[0]++;
                    found[0] = new Backing(value, offset, length);
                }

                @Override
                public void write(ByteBuffer value) {
                    calls[0] += 2;
                }

                @Override
                public void writeLazy(ByteBuffer value) {
                    calls[0] += 2;
                }
            });
            if (calls[0] == 1 && found[0] != null) {
                return found[0];
            }
            byte[] copy = bytes.toByteArray();
            return new Backing(copy, 0, copy.length);
        }
    }

    /** Package-private so that tests can seal hand-made (hostile) batches with a valid checksum. */
    long checksum(PageBatch.Builder b, byte[] data, int offset, int length) {
        // A decoded batch was checked first (its bitmap is one window's, its runs at most one per
        // page), so its header fits; a hand-made one may not, and gets a buffer of its own.
        int needed = 4 + 8 + b.getDataPages().size() + 4 + 4 + 8 * b.getZeroRunsCount();
        ByteBuffer header = needed <= this.header.capacity() ? this.header : ByteBuffer.allocate(needed);
        header.clear();
        header.putInt(b.getRound()).putLong(b.getBasePage());
        header.put(b.getDataPages().asReadOnlyByteBuffer());
        header.putInt(b.getRawLength()).putInt(b.getZeroRunsCount());
        for (PageRun run : b.getZeroRunsList()) {
            header.putInt(run.getOffset()).putInt(run.getCount());
        }
        long seed = XXH.hash(header.array(), 0, header.position(), HEADER_SEED);
        return XXH.hash(data, offset, length, seed);
    }
}
