package dev.ferry.cli.bench;

import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.memory.RamFile;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
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
          MemorySegment dst = ram.segment();
          long at = 0;
          while (at < size) {
            buf.clear();
            int r = ch.read(buf);
            if (r < 0) {
              throw new IOException("sender closed after " + at + " of " + size + " bytes");
            }
            buf.flip();
            MemorySegment.copy(MemorySegment.ofBuffer(buf), 0, dst, at, r);
            at += r;
          }
          ch.write(ByteBuffer.wrap(new byte[] {1}));
        } catch (HypervisorException e) {
          throw new IOException(e.getMessage(), e);
        }
      }
    }
  }

  /** Sends all of {@code memory}; returns once the receiver has written every byte. */
  static void send(InetSocketAddress to, MemorySegment memory) throws IOException {
    try (SocketChannel ch = SocketChannel.open(to)) {
      ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
      ch.write(ByteBuffer.allocate(8).putLong(0, memory.byteSize()));
      for (long at = 0; at < memory.byteSize(); at += CHUNK) {
        ByteBuffer b = memory.asSlice(at, Math.min(CHUNK, memory.byteSize() - at)).asByteBuffer();
        while (b.hasRemaining()) {
          ch.write(b);
        }
      }
      ByteBuffer ack = ByteBuffer.allocate(1);
      if (ch.read(ack) != 1) {
        throw new IOException("receiver did not acknowledge");
      }
    }
  }
}
