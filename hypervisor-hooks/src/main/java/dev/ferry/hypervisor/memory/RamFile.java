package dev.ferry.hypervisor.memory;

import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.hypervisor.linux.LinuxException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
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
 * Guest RAM as a file on tmpfs, mapped shared by this process. The hypervisor maps the same
 * file, so the agent reads and writes guest pages in place.
 *
 * <p>Space is checked up front: a write through a mapping of a full tmpfs is a SIGBUS, not an
 * error, so a RAM file is refused at creation when its filesystem cannot hold it.
 */
public final class RamFile implements GuestMemory, AutoCloseable {
  private static final Logger log = LoggerFactory.getLogger(RamFile.class);
  public static final int PAGE_SIZE = 4096;

  private final Path path;
  private final long size;
  private final Arena arena;
  private final MemorySegment segment;
  private boolean closed;

  private RamFile(Path path, long size, Arena arena, MemorySegment segment) {
    this.path = path;
    this.size = size;
    this.arena = arena;
    this.segment = segment;
  }

  /** Creates a new zero-filled RAM file of {@code size} bytes and maps it. */
  public static RamFile create(Path path, long size) throws HypervisorException {
    if (size <= 0 || size % PAGE_SIZE != 0) {
      throw new HypervisorException("allocate RAM", "size " + size + " is not a positive multiple of " + PAGE_SIZE);
    }
    try {
      Files.createDirectories(path.getParent());
      long usable = Files.getFileStore(path.getParent()).getUsableSpace();
      if (usable < size) {
        throw new HypervisorException("allocate RAM", String.format(
            "%s has %d MiB free, the guest needs %d MiB", path.getParent(), usable >> 20, size >> 20));
      }
      try (FileChannel ch = FileChannel.open(path,
          EnumSet.of(StandardOpenOption.CREATE_NEW, StandardOpenOption.READ, StandardOpenOption.WRITE),
          PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")))) {
        // A sparse file: tmpfs allocates pages on first write, and unwritten pages read as zero.
        ch.write(java.nio.ByteBuffer.allocate(1), size - 1);
      }
    } catch (FileAlreadyExistsException e) {
      throw new HypervisorException("allocate RAM", "RAM file " + path + " already exists (another VM of that name?)");
    } catch (IOException e) {
      throw new HypervisorException("allocate RAM", "cannot create " + path + ": " + e.getMessage(), e);
    }
    return map(path, size);
  }

  /** Maps an existing RAM file (created by this agent, possibly in use by a hypervisor). */
  public static RamFile map(Path path, long size) throws HypervisorException {
    Arena arena = Arena.ofShared();
    try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
      if (ch.size() != size) {
        throw new HypervisorException("map RAM", path + " is " + ch.size() + " bytes, expected " + size);
      }
      MemorySegment seg = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
      return new RamFile(path, size, arena, seg);
    } catch (IOException e) {
      arena.close();
      throw new HypervisorException("map RAM", "cannot map " + path + ": " + e.getMessage(), e);
    } catch (HypervisorException e) {
      arena.close();
      throw e;
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
  public MemorySegment segment() {
    return segment;
  }

  @Override
  public void discard(long firstPage, long pages) {
    try {
      Linux.madvise(segment, firstPage * PAGE_SIZE, pages * PAGE_SIZE, Linux.MADV_REMOVE);
    } catch (LinuxException e) {
      // MADV_REMOVE is refused on some filesystems; zeroing in place has the same meaning.
      segment.asSlice(firstPage * PAGE_SIZE, pages * PAGE_SIZE).fill((byte) 0);
    }
  }

  @Override
  public void populate() {
    try {
      Linux.madvise(segment, 0, size, Linux.MADV_POPULATE_WRITE);
    } catch (LinuxException e) {
      log.debug("populate {} skipped: {}", path, e.getMessage());
    }
  }

  /** Unmaps and deletes the file. */
  @Override
  public synchronized void close() {
    if (closed) {
      return;
    }
    closed = true;
    arena.close();
    try {
      Files.deleteIfExists(path);
    } catch (IOException e) {
      log.warn("cannot delete RAM file {}: {}", path, e.getMessage());
    }
  }
}
