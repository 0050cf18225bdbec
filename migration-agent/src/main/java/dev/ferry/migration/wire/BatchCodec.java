package dev.ferry.migration.wire;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.hypervisor.memory.Pages;
import dev.ferry.proto.migration.Compression;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.PageRun;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import net.jpountz.lz4.LZ4Compressor;
import net.jpountz.lz4.LZ4Factory;
import net.jpountz.lz4.LZ4SafeDecompressor;
import net.jpountz.xxhash.XXHash64;
import net.jpountz.xxhash.XXHashFactory;

/**
 * Encodes guest pages of one window into a {@link PageBatch} and decodes them back into guest
 * memory. One codec per lane: it owns scratch buffers and is not thread-safe.
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

  private final int pageSize;
  private final int windowPages;
  private final LZ4Compressor compressor = LZ4.fastCompressor();
  private final LZ4SafeDecompressor decompressor = LZ4.safeDecompressor();
  private final CompressionGovernor governor = new CompressionGovernor();
  private final byte[] raw;
  private final byte[] compressed;
  private final ByteBuffer header;

  public BatchCodec(int pageSize, int windowPages) {
    if (windowPages <= 0 || windowPages % 8 != 0) {
      throw new IllegalArgumentException("window of " + windowPages + " pages is not a positive multiple of 8");
    }
    this.pageSize = pageSize;
    this.windowPages = windowPages;
    this.raw = new byte[windowPages * pageSize];
    this.compressed = new byte[LZ4.fastCompressor().maxCompressedLength(raw.length)];
    this.header = ByteBuffer.allocate(4 + 8 + windowPages / 8 + 4 + 4 + 8 * windowPages).order(ByteOrder.LITTLE_ENDIAN);
  }

  public int windowPages() {
    return windowPages;
  }

  /** What {@link #encode} put in a batch, for accounting. */
  public record Encoded(PageBatch batch, int pages, int dataPages, int zeroPages, int wireBytes) {}

  /**
   * Encodes the pages of the window starting at {@code basePage} that are set in
   * {@code selection} (all pages of the window when {@code selection} is null), reading them
   * from {@code memory}. Returns null when the window has no selected page.
   */
  public Encoded encode(MemorySegment memory, long basePage, PageBitmap selection, int round) {
    long pageCount = memory.byteSize() / pageSize;
    int span = (int) Math.min(windowPages, pageCount - basePage);
    byte[] bitmap = new byte[windowPages / 8];
    PageBatch.Builder b = PageBatch.newBuilder().setRound(round).setBasePage(basePage);
    int dataPages = 0;
    int zeroPages = 0;
    int runStart = -1;
    for (int i = 0; i < span; i++) {
      long page = basePage + i;
      boolean selected = selection == null || selection.get(page);
      boolean zero = selected && Pages.isZero(memory, page * pageSize, pageSize);
      if (selected && zero) {
        if (runStart < 0) {
          runStart = i;
        }
        zeroPages++;
      } else if (runStart >= 0) {
        b.addZeroRuns(PageRun.newBuilder().setOffset(runStart).setCount(i - runStart));
        runStart = -1;
      }
      if (selected && !zero) {
        MemorySegment.copy(memory, ValueLayout.JAVA_BYTE, page * pageSize, raw, dataPages * pageSize, pageSize);
        bitmap[i >>> 3] |= (byte) (1 << (i & 7));
        dataPages++;
      }
    }
    if (runStart >= 0) {
      b.addZeroRuns(PageRun.newBuilder().setOffset(runStart).setCount(span - runStart));
    }
    if (dataPages == 0 && zeroPages == 0) {
      return null;
    }
    int rawLength = dataPages * pageSize;
    b.setDataPages(ByteString.copyFrom(bitmap)).setRawLength(rawLength);
    b.setChecksum(checksum(b, raw, rawLength));
    if (rawLength > 0 && governor.shouldTry()) {
      int n = compressor.compress(raw, 0, rawLength, compressed, 0, compressed.length);
      governor.record(rawLength, n);
      if (CompressionGovernor.pays(rawLength, n)) {
        b.setCompression(Compression.COMPRESSION_LZ4).setData(ByteString.copyFrom(compressed, 0, n));
      }
    }
    if (b.getCompression() != Compression.COMPRESSION_LZ4) {
      b.setCompression(Compression.COMPRESSION_RAW);
      // A fresh array per batch: gRPC may hold the message after onNext returns (in-process transport does).
      byte[] copy = new byte[rawLength];
      System.arraycopy(raw, 0, copy, 0, rawLength);
      b.setData(UnsafeByteOperations.unsafeWrap(copy));
    }
    PageBatch batch = b.build();
    return new Encoded(batch, dataPages + zeroPages, dataPages, zeroPages, batch.getSerializedSize());
  }

  /** What {@link #decode} applied. */
  public record Applied(int dataPages, int zeroPages) {}

  /** Where decoded pages go. */
  public interface PageSink {
    /** Page {@code page}'s new contents are {@code src[offset, offset + pageSize)}. */
    void write(long page, byte[] src, int offset);

    /** Pages {@code [first, first + count)} are zero. */
    void zero(long first, int count);
  }

  /**
   * Checks a batch completely (sizes, runs, decompression, checksum) before anything is written,
   * then writes its pages into {@code sink}. Nothing is applied from a batch that fails.
   */
  public Applied decode(PageBatch batch, long pageCount, PageSink sink) throws MalformedFrameException {
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
    switch (batch.getCompression()) {
      case COMPRESSION_RAW -> {
        if (data.size() != rawLength) {
          throw new MalformedFrameException("raw data of " + data.size() + " bytes, expected " + rawLength);
        }
        data.copyTo(raw, 0);
      }
      case COMPRESSION_LZ4 -> {
        if (data.size() > compressed.length) {
          throw new MalformedFrameException("compressed data of " + data.size() + " bytes is larger than any window");
        }
        data.copyTo(compressed, 0);
        int n;
        try {
          n = decompressor.decompress(compressed, 0, data.size(), raw, 0, raw.length);
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
    int at = 0;
    for (int i = 0; i < span; i++) {
      if ((bitmap[i >>> 3] & (1 << (i & 7))) != 0) {
        sink.write(base + i, raw, at);
        at += pageSize;
      }
    }
    for (PageRun run : batch.getZeroRunsList()) {
      sink.zero(base + run.getOffset(), run.getCount());
    }
    return new Applied(dataPages, zeroPages);
  }

  private long checksum(PageBatch.Builder b, byte[] data, int length) {
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
