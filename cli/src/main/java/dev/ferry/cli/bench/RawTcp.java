package dev.ferry.cli.bench;

import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.memory.RamFile;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;

/**
 * The baseline: guest memory moved over one plain TCP connection, with pread from the source RAM
 * file into a fresh RAM file on the receiver, with nothing else (no zero detection, no
 * compression, no checksum, no framing beyond a length). With checks, the same plus Ferry's
 * per-byte work (zero-page scan, xxHash64 per MiB verified before the write): what a bulk data
 * plane outside HTTP/2 would cost.
 */
final class RawTcp {
    private static final int CHUNK = 1 << 20;
    private static final net.jpountz.xxhash.XXHash64 XXH =
            net.jpountz.xxhash.XXHashFactory.fastestInstance().hash64();

    private RawTcp() {}

    /** Receives one transfer per connection into a fresh RAM file under {@code ramDir}; runs until killed. */
    static void serve(ServerSocketChannel server, Path ramDir) throws IOException {
        ByteBuffer buf = ByteBuffer.allocateDirect(CHUNK);
        ByteBuffer header = ByteBuffer.allocate(16);
        ByteBuffer sum = ByteBuffer.allocate(16);
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
                boolean checked = header.getLong() != 0;
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
                        if (checked) {
                            sum.clear();
                            while (sum.hasRemaining()) {
                                if (ch.read(sum) < 0) {
                                    throw new IOException("sender closed before a checksum");
                                }
                            }
                            if (sum.getLong(0) != XXH.hash(buf, 0, got, 0)) {
                                throw new IOException("checksum mismatch at " + at);
                            }
                        }
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
     * when that is positive; returns once the receiver has written every byte. {@code checked}
     * adds the per-byte work of Ferry's engine on plain TCP: a zero-page scan of every page and an
     * xxHash64 of every MiB, which the receiver verifies before it writes; that is what a bulk data
     * plane outside HTTP/2 would cost.
     */
    static void send(InetSocketAddress to, GuestMemory memory, long bytesPerSec, boolean checked) throws IOException {
        long start = System.nanoTime();
        try (SocketChannel ch = SocketChannel.open(to)) {
            ch.setOption(StandardSocketOptions.TCP_NODELAY, true);
            ByteBuffer header =
                    ByteBuffer.allocate(16).putLong(0, memory.sizeBytes()).putLong(8, checked ? 1 : 0);
            java.lang.foreign.MemorySegment zeroPage = java.lang.foreign.MemorySegment.ofArray(new byte[4096]);
            ByteBuffer sum = ByteBuffer.allocate(16);
            while (header.hasRemaining()) {
                ch.write(header);
            }
            ByteBuffer b = ByteBuffer.allocateDirect(CHUNK);
            for (long at = 0; at < memory.sizeBytes(); at += CHUNK) {
                b.clear().limit((int) Math.min(CHUNK, memory.sizeBytes() - at));
                java.lang.foreign.MemorySegment chunk = java.lang.foreign.MemorySegment.ofBuffer(b);
                memory.read(at, chunk);
                if (checked) {
                    long zero = 0;
                    for (long p = 0; p + 4096 <= chunk.byteSize(); p += 4096) {
                        if (java.lang.foreign.MemorySegment.mismatch(chunk, p, p + 4096, zeroPage, 0, 4096) < 0) {
                            zero++;
                        }
                    }
                    // The zero-page count travels too (Ferry's batches carry it as runs), so the scan is real work.
                    sum.clear().putLong(0, XXH.hash(b, 0, b.limit(), 0)).putLong(8, zero);
                }
                while (b.hasRemaining()) {
                    ch.write(b);
                }
                if (checked) {
                    while (sum.hasRemaining()) {
                        ch.write(sum);
                    }
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
