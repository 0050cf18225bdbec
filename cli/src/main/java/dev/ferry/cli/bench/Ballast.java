package dev.ferry.cli.bench;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Warm host memory held until a measurement starts. These machines are VMs whose host backs
 * memory lazily and takes freed memory back within seconds, so the first touch of a page costs
 * several microseconds, at random moments. A file of zeros on tmpfs makes the kernel allocate the
 * pages (and the host back them); deleting it right before a migration hands the same, backed,
 * pages to whichever side of the migration touches memory first, Ferry or QEMU alike.
 */
final class Ballast implements AutoCloseable {
    private final Path file;
    private double fillSeconds;

    Ballast(Path file) {
        this.file = file;
    }

    /** Writes {@code bytes} of zeros; returns the seconds it took (how cold the host's memory was). */
    double fill(long bytes) throws IOException {
        long start = System.nanoTime();
        Files.createDirectories(file.getParent());
        ByteBuffer zeros = ByteBuffer.allocateDirect(1 << 20);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            for (long at = 0; at < bytes; at += zeros.capacity()) {
                zeros.clear();
                while (zeros.hasRemaining()) {
                    ch.write(zeros, at + zeros.position());
                }
            }
        }
        fillSeconds = (System.nanoTime() - start) / 1e9;
        return fillSeconds;
    }

    double fillSeconds() {
        return fillSeconds;
    }

    /** Gives the memory back to the kernel (right before the measurement). */
    void release() {
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            // tmpfs: only fails if the directory is gone
        }
    }

    @Override
    public void close() {
        release();
    }
}
