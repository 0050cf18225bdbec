package dev.ferry.migration.wire;

import com.google.protobuf.ByteString;
import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.proto.migration.Compression;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.PageRun;
import java.io.IOException;
import java.lang.foreign.Arena;
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
    /** Fills {@code dst} with guest bytes starting at {@code offset}. */
    void read(long offset, ByteBuffer dst) throws IOException;
  }

  /** Where decoded pages go. */
  public interface PageSink {
    /** {@code pages} (a whole number of pages) are the new contents starting at page {@code firstPage}. */
    void write(long firstPage, ByteBuffer pages) throws IOException;

    /** Pages {@code [first, first + count)} are zero. */
    void zero(long first, int count) throws IOException;
  }

  private final int pageSize;
  private final int windowPages;
  private final LZ4Compressor compressor = LZ4.fastCompressor();
  private final LZ4SafeDecompressor decompressor = LZ4.safeDecompressor();
  private final CompressionGovernor governor = new CompressionGovernor();
  /** Pages of the window at their slots, as read. */
  private final ByteBuffer window;
  private final MemorySegment windowSegment;
  /** Data pages packed in order: what the checksum covers and what travels. */
  private final ByteBuffer raw;
  private final ByteBuffer compressed;
  private final ByteBuffer header;
  private final MemorySegment zeroPage;

  public BatchCodec(int pageSize, int windowPages) {
    if (windowPages <= 0 || windowPages % 8 != 0) {
      throw new IllegalArgumentException("window of " + windowPages + " pages is not a positive multiple of 8");
    }
    this.pageSize = pageSize;
    this.windowPages = windowPages;
    Arena arena = Arena.ofAuto();
    this.windowSegment = arena.allocate((long) windowPages * pageSize, 4096);
    this.window = windowSegment.asByteBuffer();
    this.raw = arena.allocate((long) windowPages * pageSize, 4096).asByteBuffer();
    this.compressed = arena.allocate(compressor.maxCompressedLength(windowPages * pageSize), 64).asByteBuffer();
    this.zeroPage = arena.allocate(pageSize, 64);
    this.header = ByteBuffer.allocate(4 + 8 + windowPages / 8 + 4 + 4 + 8 * windowPages).order(ByteOrder.LITTLE_ENDIAN);
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
   */
  public Encoded encode(PageSource source, long pageCount, long basePage, PageBitmap selection, int round)
      throws IOException {
    int span = (int) Math.min(windowPages, pageCount - basePage);
    int selected = 0;
    // Read each run of selected pages into its slot of the window: one pread per run.
    for (int i = 0; i < span; ) {
      if (!isSelected(selection, basePage + i)) {
        i++;
        continue;
      }
      int runEnd = i + 1;
      while (runEnd < span && isSelected(selection, basePage + runEnd)) {
        runEnd++;
      }
      window.clear().position(i * pageSize).limit(runEnd * pageSize);
      source.read((basePage + i) * pageSize, window);
      selected += runEnd - i;
      i = runEnd;
    }
    if (selected == 0) {
      return null;
    }
    byte[] bitmap = new byte[windowPages / 8];
    PageBatch.Builder b = PageBatch.newBuilder().setRound(round).setBasePage(basePage);
    int dataPages = 0;
    int zeroPages = 0;
    int runStart = -1;
    boolean packedInPlace = true;
    raw.clear();
    for (int i = 0; i < span; i++) {
      boolean sel = isSelected(selection, basePage + i);
      boolean zero = sel && isZero(i);
      if (zero) {
        if (runStart < 0) {
          runStart = i;
        }
        zeroPages++;
      } else if (runStart >= 0) {
        b.addZeroRuns(PageRun.newBuilder().setOffset(runStart).setCount(i - runStart));
        runStart = -1;
      }
      if (sel && !zero) {
        bitmap[i >>> 3] |= (byte) (1 << (i & 7));
        if (i != dataPages) {
          packedInPlace = false;
        }
        dataPages++;
      }
    }
    if (runStart >= 0) {
      b.addZeroRuns(PageRun.newBuilder().setOffset(runStart).setCount(span - runStart));
    }
    int rawLength = dataPages * pageSize;
    ByteBuffer data;
    if (packedInPlace) {
      // Data pages already sit at slots 0..n-1 (the common case of a full window): no copy.
      data = window.duplicate().clear().limit(rawLength);
    } else {
      raw.clear();
      for (int i = 0; i < span; i++) {
        if ((bitmap[i >>> 3] & (1 << (i & 7))) != 0) {
          raw.put(window.duplicate().clear().position(i * pageSize).limit((i + 1) * pageSize));
        }
      }
      data = raw.flip();
    }
    b.setDataPages(ByteString.copyFrom(bitmap)).setRawLength(rawLength);
    b.setChecksum(checksum(b, data, rawLength));
    if (rawLength > 0 && governor.shouldTry()) {
      compressed.clear();
      int n = compressor.compress(data, 0, rawLength, compressed, 0, compressed.capacity());
      governor.record(rawLength, n);
      if (CompressionGovernor.pays(rawLength, n)) {
        b.setCompression(Compression.COMPRESSION_LZ4).setData(ByteString.copyFrom(compressed.limit(n)));
      }
    }
    if (b.getCompression() != Compression.COMPRESSION_LZ4) {
      b.setCompression(Compression.COMPRESSION_RAW).setData(ByteString.copyFrom(data.duplicate().position(0).limit(rawLength)));
    }
    PageBatch batch = b.build();
    return new Encoded(batch, dataPages + zeroPages, dataPages, zeroPages, batch.getSerializedSize());
  }

  private static boolean isSelected(PageBitmap selection, long page) {
    return selection == null || selection.get(page);
  }

  private boolean isZero(int slot) {
    long off = (long) slot * pageSize;
    return MemorySegment.mismatch(windowSegment, off, off + pageSize, zeroPage, 0, pageSize) < 0;
  }

  /** What {@link #decode} applied. */
  public record Applied(int dataPages, int zeroPages) {}

  /**
   * Checks a batch completely (sizes, runs, decompression, checksum) before anything is written,
   * then writes its pages into {@code sink}. Nothing is applied from a batch that fails.
   */
  public Applied decode(PageBatch batch, long pageCount, PageSink sink) throws MalformedFrameException, IOException {
    long base = batch.getBasePage();
    if (base < 0 || base % windowPages != 0 || base >= pageCount) {
      throw new MalformedFrameException("batch base page " + base + " is not a window start below " + pageCount);
    }
    int span = (int) Math.min(windowPages, pageCount - base);
    ByteString bitmapBytes = batch.getDataPages();
    if (bitmapBytes.size() != windowPages / 8) {
      throw new MalformedFrameException("page bitmap of " + bitmapBytes.size() + " bytes, expected " + windowPages / 8);
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
    int zeroPages = 0;
    int lastEnd = 0;
    for (PageRun run : batch.getZeroRunsList()) {
      long end = (long) run.getOffset() + run.getCount();
      if (run.getCount() == 0 || run.getOffset() < lastEnd || end > span) {
        throw new MalformedFrameException("zero run " + run.getOffset() + "+" + run.getCount() + " out of order or out of window");
      }
      for (int i = run.getOffset(); i < end; i++) {
        if ((bitmap[i >>> 3] & (1 << (i & 7))) != 0) {
          throw new MalformedFrameException("page " + (base + i) + " is both data and zero");
        }
      }
      zeroPages += run.getCount();
      lastEnd = (int) end;
    }
    int rawLength = batch.getRawLength();
    if ((long) dataPages * pageSize != rawLength) {
      throw new MalformedFrameException("raw length " + rawLength + " for " + dataPages + " data pages");
    }
    ByteString data = batch.getData();
    raw.clear();
    switch (batch.getCompression()) {
      case COMPRESSION_RAW -> {
        if (data.size() != rawLength) {
          throw new MalformedFrameException("raw data of " + data.size() + " bytes, expected " + rawLength);
        }
        data.copyTo(raw);
      }
      case COMPRESSION_LZ4 -> {
        if (data.size() > compressed.capacity()) {
          throw new MalformedFrameException("compressed data of " + data.size() + " bytes is larger than any window");
        }
        compressed.clear();
        data.copyTo(compressed);
        int n;
        try {
          n = decompressor.decompress(compressed, 0, data.size(), raw, 0, raw.capacity());
        } catch (net.jpountz.lz4.LZ4Exception e) {
          throw new MalformedFrameException("LZ4 data does not decompress: " + e.getMessage());
        }
        if (n != rawLength) {
          throw new MalformedFrameException("LZ4 data decompressed to " + n + " bytes, expected " + rawLength);
        }
      }
      default -> throw new MalformedFrameException("unknown compression " + batch.getCompressionValue());
    }
    long expected = checksum(batch.toBuilder(), raw, rawLength);
    if (expected != batch.getChecksum()) {
      throw new MalformedFrameException(String.format(
          "checksum mismatch in batch at page %d (round %d): got %016x, computed %016x",
          base, batch.getRound(), batch.getChecksum(), expected));
    }
    // Contiguous data pages go out in one write each.
    int at = 0;
    for (int i = 0; i < span; ) {
      if ((bitmap[i >>> 3] & (1 << (i & 7))) == 0) {
        i++;
        continue;
      }
      int runEnd = i + 1;
      while (runEnd < span && (bitmap[runEnd >>> 3] & (1 << (runEnd & 7))) != 0) {
        runEnd++;
      }
      int len = (runEnd - i) * pageSize;
      sink.write(base + i, raw.duplicate().clear().position(at).limit(at + len));
      at += len;
      i = runEnd;
    }
    for (PageRun run : batch.getZeroRunsList()) {
      sink.zero(base + run.getOffset(), run.getCount());
    }
    return new Applied(dataPages, zeroPages);
  }

  private long checksum(PageBatch.Builder b, ByteBuffer data, int length) {
    header.clear();
    header.putInt(b.getRound()).putLong(b.getBasePage());
    header.put(b.getDataPages().asReadOnlyByteBuffer());
    header.putInt(b.getRawLength()).putInt(b.getZeroRunsCount());
    for (PageRun run : b.getZeroRunsList()) {
      header.putInt(run.getOffset()).putInt(run.getCount());
    }
    long seed = XXH.hash(header.array(), 0, header.position(), HEADER_SEED);
    return XXH.hash(data, 0, length, seed);
  }
}
