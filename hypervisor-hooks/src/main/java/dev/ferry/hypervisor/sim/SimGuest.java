package dev.ferry.hypervisor.sim;

import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.Workload;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import java.util.stream.LongStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The simulated guest: a "vCPU" thread that writes pages of its RAM at a configured rate over a
 * working set, like a busy guest would.
 *
 * <p>RAM layout: the first pages hold the guest's own table of the generation it last wrote to
 * every page (u32 per page, little-endian), the rest are data pages in {@link SimPageFormat}.
 * Before rewriting a page the guest checks it still holds what the table says; a migration that
 * loses or reorders a page is caught by the guest itself, and {@link #verify} checks a RAM image
 * from outside the same way. The vCPU registers (heartbeat, counters, random state) are the
 * device state.
 */
final class SimGuest {
    private static final Logger log = LoggerFactory.getLogger(SimGuest.class);
    static final long TICK_NANOS = 10_000_000L;
    private static final int STATE_MAGIC = 0x46534753; // "FSGS"
    private static final int STATE_VERSION = 1;
    static final int STATE_BYTES = 4 + 4 + 8 * 5;

    private final String name;
    private final MemorySegment ram;
    private final int pageSize;
    private final long pageCount;
    private final long tablePages;
    private final long workingSetPages;
    private final long hotPages;
    private final int hotPercent;
    private final Pattern pattern;
    private final long ratePagesPerSec;
    private final SimDirtyLog dirty;

    private final ReentrantLock vcpu = new ReentrantLock();
    private final Condition resumed = vcpu.newCondition();
    private boolean running;
    private boolean shutdown;
    // The fence (freeze) and the lease: the vCPU does not run while either says so. The lease is
    // checked by this guest itself, in the agent's process: it mirrors QEMU's behaviour, but cannot
    // protect against a frozen agent (the sim guest freezes with it anyway).
    private boolean frozen;
    private volatile dev.ferry.hypervisor.lease.LeaseFile lease;
    private Thread thread;
    // The guest's "serial console": a line per CONSOLE_TICKS heartbeats, appended to a file in the
    // VM's run directory, so that progress is seen from outside the agent (the chaos suite's I1,
    // as the test guest's console under QEMU). Null: no console.
    static final int CONSOLE_TICKS = 10;
    private volatile dev.ferry.hypervisor.console.ConsoleHistory console;

    // vCPU registers: the device state.
    private long heartbeat;
    private long writes;
    private long stale;
    private long rng = 0x9E3779B97F4A7C15L;
    private double credit;

    SimGuest(String name, MemorySegment ram, int pageSize, Workload workload, SimDirtyLog dirty) {
        this.name = name;
        this.ram = ram;
        this.pageSize = pageSize;
        this.pageCount = ram.byteSize() / pageSize;
        this.tablePages = tablePages(pageCount, pageSize);
        long dataPages = pageCount - tablePages;
        long ws = workload.getWorkingSetBytes() == 0 ? dataPages : workload.getWorkingSetBytes() / pageSize;
        this.workingSetPages = Math.max(1, Math.min(ws, dataPages));
        this.hotPages = Math.max(1, Math.min(workload.getHotSetBytes() / pageSize, workingSetPages));
        this.hotPercent = Math.min(100, workload.getHotPercent());
        this.pattern =
                workload.getPattern() == Pattern.PATTERN_INVALID ? Pattern.PATTERN_RANDOM : workload.getPattern();
        this.ratePagesPerSec = workload.getDirtyRatePagesPerSec();
        this.dirty = dirty;
    }

    static long tablePages(long pageCount, int pageSize) {
        return (pageCount * 4 + pageSize - 1) / pageSize;
    }

    /**
     * Gives RAM its initial contents, as a guest that has been running a while would have. Written
     * with pwrite, not through the mapping: first-touch page faults would make a large guest slow
     * to create.
     */
    void fill(GuestMemory memory) throws java.io.IOException {
        int chunkPages = 256;
        long dataPages = pageCount - tablePages;
        long chunks = (dataPages + chunkPages - 1) / chunkPages;
        java.nio.ByteBuffer table = java.nio.ByteBuffer.allocateDirect((int) (tablePages * pageSize))
                .order(java.nio.ByteOrder.LITTLE_ENDIAN);
        ThreadLocal<MemorySegment> buffers = ThreadLocal.withInitial(
                () -> java.lang.foreign.Arena.ofAuto().allocate((long) chunkPages * pageSize, 4096));
        try {
            LongStream.range(0, chunks).parallel().forEach(c -> {
                long from = tablePages + c * chunkPages;
                long to = Math.min(pageCount, from + chunkPages);
                MemorySegment buf = buffers.get();
                buf.fill((byte) 0);
                boolean any = false;
                for (long p = from; p < to; p++) {
                    if (pattern == Pattern.PATTERN_SPARSE && !sparseDataPage(p)) {
                        continue;
                    }
                    SimPageFormat.write(buf, (p - from) * pageSize, pageSize, p, 1, pattern);
                    table.putInt((int) (p * 4), 1);
                    any = true;
                }
                if (any) {
                    try {
                        if (pattern == Pattern.PATTERN_SPARSE) {
                            // Only the pages with data: the rest stays holes, like memory a fresh guest never touched.
                            for (long p = from; p < to; p++) {
                                if (sparseDataPage(p)) {
                                    memory.write(p * pageSize, buf.asSlice((p - from) * pageSize, pageSize));
                                }
                            }
                        } else {
                            memory.write(from * pageSize, buf.asSlice(0, (to - from) * pageSize));
                        }
                    } catch (java.io.IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                }
            });
        } catch (java.io.UncheckedIOException e) {
            throw e.getCause();
        }
        memory.write(0, MemorySegment.ofBuffer(table.clear()));
    }

    private static boolean sparseDataPage(long page) {
        long z = page * 0x9E3779B97F4A7C15L;
        return Long.remainderUnsigned(z ^ (z >>> 32), 10) == 0;
    }

    /** Starts (or resumes) the vCPU. */
    void run() {
        vcpu.lock();
        try {
            if (shutdown) {
                throw new IllegalStateException("guest " + name + " is shut down");
            }
            running = true;
            if (thread == null) {
                thread = Thread.ofPlatform().daemon().name("sim-vcpu-" + name).start(this::loop);
            }
            resumed.signalAll();
        } finally {
            vcpu.unlock();
        }
    }

    /** Stops the vCPU at once (the fence); returns once no write is in flight. */
    void freeze() {
        vcpu.lock();
        try {
            frozen = true;
        } finally {
            vcpu.unlock();
        }
    }

    void thaw() {
        vcpu.lock();
        try {
            frozen = false;
            resumed.signalAll();
        } finally {
            vcpu.unlock();
        }
    }

    /** True while the vCPU may not run: frozen, or its lease lapsed. */
    boolean frozen() {
        vcpu.lock();
        try {
            return frozen || leaseLapsed();
        } finally {
            vcpu.unlock();
        }
    }

    void lease(dev.ferry.hypervisor.lease.LeaseFile l) {
        lease = l;
    }

    private boolean leaseLapsed() {
        dev.ferry.hypervisor.lease.LeaseFile l = lease;
        try {
            return l != null && l.lapsed();
        } catch (IllegalStateException closed) {
            return true;
        }
    }

    private boolean executes() {
        return running && !frozen && !leaseLapsed();
    }

    /** Stops the vCPU; returns once no write is in flight. */
    void pause() {
        vcpu.lock();
        try {
            running = false;
        } finally {
            vcpu.unlock();
        }
    }

    void shutdown() {
        Thread t;
        vcpu.lock();
        try {
            shutdown = true;
            running = false;
            resumed.signalAll();
            t = thread;
        } finally {
            vcpu.unlock();
        }
        if (t != null && t != Thread.currentThread()) {
            try {
                t.join(5_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    long heartbeat() {
        vcpu.lock();
        try {
            return heartbeat;
        } finally {
            vcpu.unlock();
        }
    }

    long staleReads() {
        vcpu.lock();
        try {
            return stale;
        } finally {
            vcpu.unlock();
        }
    }

    long writes() {
        vcpu.lock();
        try {
            return writes;
        } finally {
            vcpu.unlock();
        }
    }

    private void loop() {
        long last = System.nanoTime();
        while (true) {
            vcpu.lock();
            try {
                while (!executes() && !shutdown) {
                    // Polls too: a renewed lease is noticed without a signal.
                    try {
                        resumed.await(20, java.util.concurrent.TimeUnit.MILLISECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return;
                    }
                    last = System.nanoTime();
                }
                if (shutdown) {
                    return;
                }
                heartbeat++;
                if (heartbeat % CONSOLE_TICKS == 0) {
                    print("FERRY-GUEST hb=" + heartbeat / CONSOLE_TICKS + " gen=" + writes + " stale=" + stale + "\n");
                }
            } finally {
                vcpu.unlock();
            }
            long now = System.nanoTime();
            credit = Math.min(credit + ratePagesPerSec * (now - last) / 1e9, Math.max(1, ratePagesPerSec / 10.0));
            last = now;
            int burst = (int) credit;
            for (int i = 0; i < burst; i++) {
                vcpu.lock();
                try {
                    if (!executes()) {
                        break;
                    }
                    writeOne();
                    credit -= 1;
                } finally {
                    vcpu.unlock();
                }
            }
            long sleep = TICK_NANOS - (System.nanoTime() - now);
            if (sleep > 0) {
                LockSupport.parkNanos(sleep);
            }
        }
    }

    /** Where the guest prints its heartbeat lines ({@code FERRY-GUEST hb=N gen=W stale=S}, as the test guest does). */
    void console(dev.ferry.hypervisor.console.ConsoleHistory history) {
        this.console = history;
    }

    /** Prints {@code text} on the console: the guest's lines, and the input it echoes (as a terminal would). */
    void print(String line) {
        dev.ferry.hypervisor.console.ConsoleHistory h = console;
        if (h == null) {
            return;
        }
        // One append per line: a reader never sees half a line followed by another's start.
        try {
            h.append(line.getBytes(java.nio.charset.StandardCharsets.ISO_8859_1));
        } catch (java.io.IOException e) {
            console = null; // the run directory went away (the VM was discarded): stop printing
        }
    }

    private void writeOne() {
        rng = xorshift(rng);
        long r = rng * 0x2545F4914F6CDD1DL;
        long page;
        if (hotPercent > 0 && Long.remainderUnsigned(r >>> 40, 100) < hotPercent) {
            page = tablePages + Long.remainderUnsigned(r, hotPages);
        } else {
            page = tablePages + Long.remainderUnsigned(r, workingSetPages);
        }
        long expected = table(page);
        long found = SimPageFormat.check(ram, page * pageSize, pageSize, page);
        if (found != expected) {
            stale++;
            if (stale <= 5) {
                log.warn("guest {}: page {} holds generation {}, expected {}", name, page, found, expected);
            }
        }
        long generation = expected + 1;
        SimPageFormat.write(ram, page * pageSize, pageSize, page, generation, pattern);
        setTable(page, generation);
        dirty.mark(page);
        dirty.mark(page * 4 / pageSize);
        writes++;
    }

    private long table(long page) {
        return Integer.toUnsignedLong(ram.get(ValueLayout.JAVA_INT_UNALIGNED, page * 4));
    }

    private void setTable(long page, long generation) {
        ram.set(ValueLayout.JAVA_INT_UNALIGNED, page * 4, (int) generation);
    }

    /** The vCPU registers, taken while paused. */
    byte[] saveState() {
        vcpu.lock();
        try {
            ByteBuffer b = ByteBuffer.allocate(STATE_BYTES);
            b.putInt(STATE_MAGIC).putInt(STATE_VERSION);
            b.putLong(heartbeat).putLong(writes).putLong(stale).putLong(rng).putDouble(credit);
            return b.array();
        } finally {
            vcpu.unlock();
        }
    }

    void loadState(byte[] state) {
        ByteBuffer b = ByteBuffer.wrap(state);
        if (state.length != STATE_BYTES || b.getInt() != STATE_MAGIC) {
            throw new IllegalArgumentException("not a sim guest state (" + state.length + " bytes)");
        }
        int version = b.getInt();
        if (version != STATE_VERSION) {
            throw new IllegalArgumentException("sim guest state version " + version + " is not " + STATE_VERSION);
        }
        vcpu.lock();
        try {
            heartbeat = b.getLong();
            writes = b.getLong();
            stale = b.getLong();
            rng = b.getLong();
            credit = b.getDouble();
        } finally {
            vcpu.unlock();
        }
    }

    private static long xorshift(long s) {
        s ^= s >>> 12;
        s ^= s << 25;
        s ^= s >>> 27;
        return s;
    }

    /** Result of checking a RAM image from outside. */
    public record Verification(long pagesChecked, long pagesWritten, long badPages, long firstBadPage) {
        public boolean ok() {
            return badPages == 0;
        }
    }

    /** Checks every data page of a sim guest's RAM image against the guest's own generation table. */
    static Verification verify(MemorySegment ram, int pageSize) {
        long pageCount = ram.byteSize() / pageSize;
        long table = tablePages(pageCount, pageSize);
        long written = 0;
        long bad = 0;
        long firstBad = -1;
        for (long p = table; p < pageCount; p++) {
            long expected = Integer.toUnsignedLong(ram.get(ValueLayout.JAVA_INT_UNALIGNED, p * 4));
            long found = SimPageFormat.check(ram, p * pageSize, pageSize, p);
            if (found != expected) {
                bad++;
                if (firstBad < 0) {
                    firstBad = p;
                }
            } else if (found > 0) {
                written++;
            }
        }
        return new Verification(pageCount - table, written, bad, firstBad);
    }
}
