package dev.ferry.testkit.guest;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

/**
 * A writer of the "newc" cpio format, the one the Linux kernel unpacks as an initramfs: a 110-byte
 * ASCII header per entry (13 eight-digit hex fields after the magic 070701), the NUL-terminated
 * name and the data, each padded to four bytes, then the {@code TRAILER!!!} entry.
 */
final class Cpio implements AutoCloseable {
    private static final int DIR = 0040000;
    private static final int FILE = 0100000;
    private static final int CHAR = 0020000;

    private final OutputStream out;
    private long written;
    private int ino = 1;

    Cpio(OutputStream out) {
        this.out = out;
    }

    void dir(String name) throws IOException {
        entry(name, DIR | 0755, 0, 0, new byte[0]);
    }

    void file(String name, int mode, byte[] data) throws IOException {
        entry(name, FILE | mode, 0, 0, data);
    }

    void charDevice(String name, int major, int minor) throws IOException {
        entry(name, CHAR | 0600, major, minor, new byte[0]);
    }

    private void entry(String name, int mode, int rdevMajor, int rdevMinor, byte[] data) throws IOException {
        byte[] n = (name + "\0").getBytes(StandardCharsets.US_ASCII);
        int nlink = (mode & DIR) == DIR ? 2 : 1;
        String header = String.format(
                java.util.Locale.ROOT,
                "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
                ino++,
                mode,
                0,
                0,
                nlink,
                0,
                data.length,
                0,
                0,
                rdevMajor,
                rdevMinor,
                n.length,
                0);
        write(header.getBytes(StandardCharsets.US_ASCII));
        write(n);
        pad();
        write(data);
        pad();
    }

    private void write(byte[] b) throws IOException {
        out.write(b);
        written += b.length;
    }

    private void pad() throws IOException {
        while (written % 4 != 0) {
            out.write(0);
            written++;
        }
    }

    @Override
    public void close() throws IOException {
        entry("TRAILER!!!", 0, 0, 0, new byte[0]);
        out.close();
    }
}
