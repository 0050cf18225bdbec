package dev.ferry.hypervisor.memory;

import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.hypervisor.linux.LinuxException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.EnumSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Guest RAM as a file on tmpfs, shared with the hypervisor. The agent moves pages with
 * positional I/O on its own descriptor; a mapping is made only for those who ask for one.
 *
 * <p>Space is checked up front: a write through a mapping of a full tmpfs is a SIGBUS, not an
 * error, so a RAM file is refused at creation when its filesystem cannot hold it.
 */
public final class RamFile implements GuestMemory, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(RamFile.class);
    public static final int PAGE_SIZE = 4096;

    private final Path path;
    private final long size;
    private final FileChannel channel;
    private final int fd;
    private Arena arena;
    private MemorySegment segment;
    private boolean closed;

    private RamFile(Path path, long size, FileChannel channel, int fd) {
        this.path = path;
        this.size = size;
        this.channel = channel;
        this.fd = fd;
    }

    /** Creates a new zero-filled (sparse) RAM file of {@code size} bytes. */
    public static RamFile create(Path path, long size) throws HypervisorException {
        if (size <= 0 || size % PAGE_SIZE != 0) {
            throw new HypervisorException(
                    "allocate RAM", "size " + size + " is not a positive multiple of " + PAGE_SIZE);
        }
        try {
            Files.createDirectories(path.getParent());
            long usable = Files.getFileStore(path.getParent()).getUsableSpace();
            if (usable < size) {
                throw new HypervisorException(
                        "allocate RAM",
                        String.format(
                                "%s has %d MiB free, the guest needs %d MiB",
                                path.getParent(), usable >> 20, size >> 20));
            }
            try (FileChannel ch = FileChannel.open(
                    path,
                    EnumSet.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.READ, StandardOpenOption.WRITE),
                    PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")))) {
                // A sparse file: tmpfs allocates pages on first write, and unwritten pages read as zero.
                ch.write(ByteBuffer.allocate(1), size - 1);
            }
        } catch (FileAlreadyExistsException e) {
            throw new HypervisorException(
                    "allocate RAM", "RAM file " + path + " already exists (another VM of that name?)");
        } catch (IOException e) {
            throw new HypervisorException("allocate RAM", "cannot create " + path + ": " + e.getMessage(), e);
        }
        return open(path, size);
    }

    /** Opens an existing RAM file (created by this agent, possibly in use by a hypervisor). */
    public static RamFile open(Path path, long size) throws HypervisorException {
        FileChannel ch = null;
        try {
            ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE);
            if (ch.size() != size) {
                throw new HypervisorException("open RAM", path + " is " + ch.size() + " bytes, expected " + size);
            }
            int fd = Linux.open(path.toString(), Linux.O_RDWR | Linux.O_CLOEXEC);
            return new RamFile(path, size, ch, fd);
        } catch (IOException e) {
            closeQuietly(ch);
            throw new HypervisorException("open RAM", "cannot open " + path + ": " + e.getMessage(), e);
        } catch (HypervisorException e) {
            closeQuietly(ch);
            throw e;
        }
    }

    private static void closeQuietly(FileChannel ch) {
        if (ch != null) {
            try {
                ch.close();
            } catch (IOException ignored) {
                // nothing more to do
            }
        }
    }

    public Path path() {
        return path;
    }

    @Override
    public long sizeBytes() {
        return size;
    }

    @Override
    public int pageSize() {
        return PAGE_SIZE;
    }

    @Override
    public void read(long offset, MemorySegment dst) throws IOException {
        check(offset, dst.byteSize());
        Linux.pread(fd, dst, offset);
    }

    @Override
    public void write(long offset, MemorySegment src) throws IOException {
        check(offset, src.byteSize());
        Linux.pwrite(fd, src, offset);
    }

    private void check(long offset, long length) {
        if (offset < 0 || offset + length > size) {
            throw new IndexOutOfBoundsException(
                    "[" + offset + ", +" + length + ") of guest memory of " + size + " bytes");
        }
    }

    /** Holes of the sparse RAM file are memory the guest never wrote (or that was discarded). */
    @Override
    public long nextData(long offset) throws IOException {
        long r = Linux.seekData(fd, offset);
        return r < 0 ? size : r;
    }

    @Override
    public void discard(long firstPage, long pages) throws IOException {
        check(firstPage * PAGE_SIZE, 0);
        try {
            Linux.fallocate(
                    fd,
                    Linux.FALLOC_FL_PUNCH_HOLE | Linux.FALLOC_FL_KEEP_SIZE,
                    firstPage * PAGE_SIZE,
                    pages * PAGE_SIZE);
        } catch (LinuxException e) {
            // Some filesystems cannot punch holes; writing zeros means the same to the guest.
            MemorySegment zeros = MemorySegment.ofArray(new byte[PAGE_SIZE * 16]);
            for (long p = 0; p < pages; p += 16) {
                write((firstPage + p) * PAGE_SIZE, zeros.asSlice(0, Math.min(16, pages - p) * PAGE_SIZE));
            }
        }
    }

    @Override
    public synchronized MemorySegment segment() {
        if (closed) {
            throw new IllegalStateException("RAM file " + path + " is closed");
        }
        if (segment == null) {
            Arena a = Arena.ofShared();
            try {
                segment = channel.map(FileChannel.MapMode.READ_WRITE, 0, size, a);
                arena = a;
            } catch (IOException e) {
                a.close();
                throw new IllegalStateException("cannot map " + path + ": " + e.getMessage(), e);
            }
        }
        return segment;
    }

    /** Unmaps and closes the file but keeps it: the guest it belongs to lives on (an agent exiting). */
    public synchronized void detach() {
        if (closed) {
            return;
        }
        closed = true;
        if (arena != null) {
            arena.close();
        }
        closeQuietly(channel);
        Linux.close(fd);
    }

    /** Unmaps, closes and deletes the file. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (arena != null) {
            arena.close();
        }
        closeQuietly(channel);
        Linux.close(fd);
        try {
            Files.deleteIfExists(path);
        } catch (IOException e) {
            log.warn("cannot delete RAM file {}: {}", path, e.getMessage());
        }
    }
}
