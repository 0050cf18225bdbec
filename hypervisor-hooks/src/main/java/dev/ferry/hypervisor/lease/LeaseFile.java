package dev.ferry.hypervisor.lease;

import java.io.Closeable;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * A guest's lease: the deadline until which its hypervisor process may execute the guest, in a
 * small file the agent writes and the hypervisor enforces below the agent.
 *
 * <p>The QEMU side is {@code libferryhook.so} ({@code FERRY_LEASE_FILE}): a POSIX timer on
 * CLOCK_MONOTONIC makes the kernel send SIGSTOP to QEMU at the deadline, and a thread re-arms it
 * when the deadline moves. So when the agent stops renewing (it is frozen, swapped out, throttled
 * or dead) the guest stops at the deadline without the agent's help. The layout is the hook's
 * ABI: little-endian u64 magic "FERRYLS1", u64 deadline in CLOCK_MONOTONIC nanoseconds (0: none
 * granted, stop at once), u64 revision. {@link System#nanoTime()} reads CLOCK_MONOTONIC on Linux,
 * the clock the kernel timer uses, so both sides agree on "now" on one host.
 *
 * <p>The file is written in place through a shared mapping and never replaced: a running QEMU maps
 * the file it opened at start, so a replacement would never be seen. An agent that restarts opens
 * the same file again ({@link #open}).
 */
public final class LeaseFile implements Closeable {
    /** "FERRYLS1" read as a little-endian u64. */
    public static final long MAGIC = 0x31534c5952524546L;

    static final int SIZE = 4096;
    private static final long OFF_MAGIC = 0;
    private static final long OFF_DEADLINE = 8;
    private static final long OFF_REVISION = 16;
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    private static final VarHandle WORD = U64.varHandle();

    private final Path path;
    private final Arena arena;
    private final MemorySegment page;
    private long revision;
    private boolean closed;

    private LeaseFile(Path path, Arena arena, MemorySegment page) {
        this.path = path;
        this.arena = arena;
        this.page = page;
        this.revision = (long) WORD.getVolatile(page, OFF_REVISION);
    }

    /** Creates (or takes over) the lease file at {@code path} (mode 0600) granting until {@code deadlineNanos}. */
    public static LeaseFile create(Path path, long deadlineNanos) throws IOException {
        if (!Files.exists(path)) {
            try {
                Files.createFile(
                        path, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            } catch (java.nio.file.FileAlreadyExistsException e) {
                // created meanwhile: take it over below
            }
        }
        LeaseFile lease = map(path);
        lease.grantUntil(deadlineNanos);
        return lease;
    }

    /** Opens an existing lease file (an agent re-adopting a running guest); its deadline is kept. */
    public static LeaseFile open(Path path) throws IOException {
        if (!Files.isRegularFile(path)) {
            throw new java.nio.file.NoSuchFileException(path.toString(), null, "no lease file");
        }
        return map(path);
    }

    private static LeaseFile map(Path path) throws IOException {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, Set.of(StandardOpenOption.READ, StandardOpenOption.WRITE))) {
            if (ch.size() < SIZE) {
                // Grows the file to one page: the hook maps a whole page.
                ch.write(java.nio.ByteBuffer.allocate(1), SIZE - 1);
            }
            MemorySegment page = ch.map(FileChannel.MapMode.READ_WRITE, 0, SIZE, arena);
            return new LeaseFile(path, arena, page);
        } catch (IOException | RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    public Path path() {
        return path;
    }

    /**
     * Grants execution until {@code deadlineNanos} ({@link System#nanoTime()} clock). The deadline
     * is written before the magic is (re)checked by the hook, each with a volatile store, so the
     * hook never reads a torn or half-initialised lease.
     */
    public synchronized void grantUntil(long deadlineNanos) {
        checkOpen();
        WORD.setVolatile(page, OFF_DEADLINE, Math.max(0, deadlineNanos));
        WORD.setVolatile(page, OFF_REVISION, ++revision);
        WORD.setVolatile(page, OFF_MAGIC, MAGIC);
    }

    /** Ends the lease now: the guest stops within the hook's poll interval (20 ms). */
    public void revoke() {
        grantUntil(0);
    }

    /** The granted deadline ({@link System#nanoTime()} clock), 0 if none. */
    public synchronized long deadline() {
        checkOpen();
        if ((long) WORD.getVolatile(page, OFF_MAGIC) != MAGIC) {
            return 0;
        }
        return (long) WORD.getVolatile(page, OFF_DEADLINE);
    }

    /** True when the guest may not execute now (its hypervisor has stopped it, or will at once). */
    public boolean lapsed() {
        long d = deadline();
        return d == 0 || d - System.nanoTime() <= 0;
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("lease file " + path + " is closed");
        }
    }

    /** Unmaps the file; the lease itself stays as written (the guest keeps its deadline). */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "lease " + path;
    }
}
