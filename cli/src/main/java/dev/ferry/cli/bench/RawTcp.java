package dev.ferry.cli.bench;

import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.memory.RamFile;
import java.io.IOException;
import dev.ferry.hypervisor.GuestMemory;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;

/**
 * The baseline: guest memory moved over one plain TCP connection, from a mapping of the source
 * RAM file into a fresh RAM file on the receiver, with nothing else (no zero detection, no
 * compression, no checksum, no framing beyond a length).
 */
final class RawTcp {
  private static final int CHUNK = 1 << 20;

  private RawTcp() {}

  /** Receives one transfer per connection into a fresh RAM file under {@code ramDir}; runs until killed. */
  static void serve(ServerSocketChannel server, Path ramDir) throws IOException {
    ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK);
    ByteBuffer header = ByteBuffer.allocate(8);
    int n = 0;
    while (true) {
      try (SocketChannel ch = server.accept()) {
        header.clear();
        while (header.hasRemaining()) {
          if (ch.read(header) < 0) {
            throw new IOException("sender closed before the header");
          }
        }
        long size = header.flip().getLong();
        try (RamFile ram = RamFile.create(ramDir.resolve("raw-" + (n++) + ".ram"), size)) {
          long at = 0;
          while (at < size) {
            buf.clear().limit((int) Math.min(CHUNK, size - at));
            while (buf.hasRemaining()) {
              if (ch.read(buf) < 0) {
                throw new IOException("sender closed after " + at + " of " + size + " bytes");
              }
            }
            buf.flip();
            int got = buf.remaining();
            ram.write(at, java.lang.foreign.MemorySegment.ofBuffer(buf));
            at += got;
          }
          ch.write(ByteBuffer.wrap(new byte[] {1}));
        } catch (HypervisorException e) {
          throw new IOException(e.getMessage(), e);
        }
      }
    }
  }

  /**
   * Sends all of {@code memory} (read with pread, as Ferry does), paced to {@code bytesPerSec}
   * when that is positive; returns once the receiver has written every byte.
   */
  static void send(InetSocketAddress to, GuestMemory memory, long bytesPerSec) throws IOException {
    long start = System.nanoTime();
    try (SocketChannel ch = SocketChannel.open(to)) {
      ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
      ByteBuffer header = ByteBuffer.allocate(8).putLong(0, memory.sizeBytes());
      while (header.hasRemaining()) {
        ch.write(header);
      }
      ByteBuffer b = ByteBuffer.allocateDirect(CHUNK);
      for (long at = 0; at < memory.sizeBytes(); at += CHUNK) {
        b.clear().limit((int) Math.min(CHUNK, memory.sizeBytes() - at));
        memory.read(at, java.lang.foreign.MemorySegment.ofBuffer(b));
        while (b.hasRemaining()) {
          ch.write(b);
        }
        if (bytesPerSec > 0) {
          pace(start, at + CHUNK, bytesPerSec);
        }
      }
      ByteBuffer ack = ByteBuffer.allocate(1);
      if (ch.read(ack) != 1) {
        throw new IOException("receiver did not acknowledge");
      }
    }
  }

  /** Sleeps until {@code sent} bytes are due at {@code bytesPerSec} since {@code start}. */
  private static void pace(long start, long sent, long bytesPerSec) throws IOException {
    long due = start + (long) (sent * 1e9 / bytesPerSec);
    long wait = due - System.nanoTime();
    if (wait > 0) {
      try {
        Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IOException("interrupted");
      }
    }
  }
}
