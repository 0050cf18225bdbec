package dev.ferry.migration.receive;

import com.google.protobuf.ByteString;
import dev.ferry.hypervisor.DeviceState;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.logs.LogContext;
import dev.ferry.migration.MigrationException;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.migration.RamDigest;
import dev.ferry.migration.RegionDigests;
import dev.ferry.migration.commit.CommitOutcome;
import dev.ferry.migration.commit.CommitRequest;
import dev.ferry.migration.commit.OwnershipCommit;
import dev.ferry.migration.wire.MalformedFrameException;
import dev.ferry.proto.migration.Abort;
import dev.ferry.proto.migration.Commit;
import dev.ferry.proto.migration.Hello;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.Ready;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.Resumed;
import dev.ferry.proto.migration.Switchover;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.proto.vm.VmSpec;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The destination side of one live migration, from PrepareIncoming until the VM runs here or is
 * discarded. Lanes deliver pages in parallel; lane 0 also carries device state, the switchover
 * and the commit.
 *
 * <p>Until the commit, everything here is disposable: any failure discards the VM and its files
 * and the source keeps running. After {@link State#READY}, a lost stream is not enough to
 * discard: the commit's outcome decides (see {@link OwnershipCommit#resolve}).
 */
public final class IncomingMigration {
    private static final Logger log = LoggerFactory.getLogger(IncomingMigration.class);

    public enum State {
        /** Told to expect the VM; no lane yet. */
        PREPARED,
        /** Lanes attached, pages arriving. */
        RECEIVING,
        /** The source is paused; applying the final pages and device state. */
        SWITCHING,
        /** Everything applied; waiting for the commit. */
        READY,
        /** The commit happened; the VM runs here. */
        COMMITTED,
        /** Given up; the VM and its files are gone. */
        DISCARDED
    }

    /** What the agent does when the migration ends either way. */
    public interface Listener {
        /** The VM is this host's now and running, at {@code epoch}. */
        void committed(IncomingMigration migration, long epoch);

        /** The VM and its files are gone. */
        void discarded(IncomingMigration migration, String reason);
    }

    /** What the destination needs to know for one migration. */
    public record Expectation(
            String migrationId, String hostId, VmSpec spec, String sourceHost, TransferMode mode, long epoch) {}

    /**
     * What bounds the destination's waits for its source, so that a source gone silent (a blackholed
     * link, a frozen host) cannot keep the VM's RAM file, hypervisor process and name here for long.
     * A dead connection is noticed sooner by the transport's keepalive; these catch a connected
     * source that no longer sends, and one that never came.
     *
     * @param handshake every lane says hello within this of the prepare
     * @param idle once every lane is attached, and while pages or device state are still awaited,
     *     the migration is discarded when no frame arrives on any lane for this long
     * @param apply after the Switchover, everything is applied and loaded within this
     */
    public record Deadlines(Duration handshake, Duration idle, Duration apply) {
        public Deadlines {
            if (!handshake.isPositive() || !idle.isPositive() || !apply.isPositive()) {
                throw new IllegalArgumentException("deadlines must be positive");
            }
        }
    }

    private final Expectation expected;
    private final String token;
    private final VmInstance vm;
    private final OwnershipCommit commit;
    private final Listener listener;
    private final Deadlines deadlines;
    private final Duration applyTimeout;
    private final long preparedAt = System.nanoTime();
    /** When a frame last arrived on any lane (a hello included). */
    private volatile long lastFrameAt = preparedAt;
    /** Lanes applying a frame right now: a lane busy writing is not a silent source. */
    private final java.util.concurrent.atomic.AtomicInteger applying = new java.util.concurrent.atomic.AtomicInteger();

    private State state = State.PREPARED;
    private ReceiverLane[] lanes;
    private int attached;
    /** Lanes that delivered their final round, each counted once. */
    private boolean[] laneFinished;

    private int finalLanes;
    /** The round every lane ended its pages with (uint32, unsigned); -1 until the first lane did. */
    private long finalRound = -1;

    private DeviceState.Loader loader;
    /** The device-state loader opened as the migration starts (pre-copy), so the pause does not wait for its set-up. */
    private java.util.concurrent.CompletableFuture<DeviceState.Loader> arming;

    private boolean deviceStateComplete;
    private long deviceStateBytes;
    /**
     * Pre-copy: the device state as it arrived, held until every lane's final pages are in RAM.
     * QEMU reads guest RAM while it loads devices (virtio takes each queue's used and avail index from
     * the rings in RAM), so a load that overtook the final pages computed its queues from stale rings:
     * the device then wrote used entries the guest had already consumed and the guest waited on its
     * queue forever (a migrated Linux guest with a NIC hung in a soft lockup). QEMU's own migration
     * never does this: its stream carries RAM before the devices.
     */
    private final List<ByteString> heldDeviceState = new ArrayList<>();

    private String discardReason;
    /** Lanes write into the VM under the read side; a discard takes the write side before it closes the VM. */
    private final java.util.concurrent.locks.ReentrantReadWriteLock vmWrites =
            new java.util.concurrent.locks.ReentrantReadWriteLock();
    /** Set (under this migration's lock) as the discard begins; from then on no write starts. */
    private volatile boolean closing;
    /**
     * With a verified migration: digests of this side's RAM by region, marked by the lanes as they
     * write and refreshed between rounds, so that the switchover re-reads only what the last
     * rounds wrote. Null otherwise.
     */
    private volatile RegionDigests regionDigests;

    private final java.util.concurrent.CountDownLatch discarded = new java.util.concurrent.CountDownLatch(1);

    public IncomingMigration(
            Expectation expected,
            String token,
            VmInstance vm,
            OwnershipCommit commit,
            Listener listener,
            Deadlines deadlines) {
        this.expected = expected;
        this.token = token;
        this.vm = vm;
        this.commit = commit;
        this.listener = listener;
        this.deadlines = deadlines;
        this.applyTimeout = deadlines.apply();
    }

    /**
     * {@code task} with this migration's log fields (VM, migration, source, epoch): the threads of
     * the destination's side write them into every line (--log-format json).
     */
    private Runnable withFields(Runnable task) {
        return () -> {
            try (LogContext.Scope fields = LogContext.with(
                    LogContext.VM,
                    expected.spec().getName(),
                    LogContext.MIGRATION,
                    expected.migrationId(),
                    LogContext.SOURCE,
                    expected.sourceHost(),
                    LogContext.EPOCH,
                    Long.toString(expected.epoch()))) {
                task.run();
            }
        };
    }

    public String migrationId() {
        return expected.migrationId();
    }

    public VmSpec spec() {
        return expected.spec();
    }

    public VmInstance vm() {
        return vm;
    }

    public String sourceHost() {
        return expected.sourceHost();
    }

    public synchronized State state() {
        return state;
    }

    public synchronized String discardReason() {
        return discardReason;
    }

    TransferMode mode() {
        return expected.mode();
    }

    /** Called by a lane after it wrote or zeroed guest pages: their regions' digests are out of date. */
    void wrote(long offset, long length) {
        RegionDigests d = regionDigests;
        if (d != null) {
            d.markStale(offset, length);
            // Hashed as the round arrives, not only at its end: a large round just before the
            // pause (a working set rewritten) would otherwise still be hashing when it comes.
            if (unhashed.addAndGet(length) >= REFRESH_EVERY_BYTES) {
                unhashed.set(0);
                d.refreshInBackground(vm.memory());
            }
        }
    }

    /** Bytes written by the lanes since a background refresh was last asked for. */
    private final java.util.concurrent.atomic.AtomicLong unhashed = new java.util.concurrent.atomic.AtomicLong();

    private static final long REFRESH_EVERY_BYTES = 4L << 20;

    /** Called by a lane at the end of each of its rounds: refresh what changed, off the pause. */
    void laneRoundEnded() {
        RegionDigests d = regionDigests;
        if (d != null) {
            d.refreshInBackground(vm.memory());
        }
    }

    /** Checks a lane's Hello and attaches it; returns the refusal reason instead when it does not fit. */
    synchronized String attach(Hello hello, ReceiverLane lane) {
        if (hello.getProtocolVersion() != MigrationStreamRpc.PROTOCOL_VERSION) {
            return "protocol version " + Integer.toUnsignedString(hello.getProtocolVersion())
                    + " is not supported (this agent speaks "
                    + MigrationStreamRpc.PROTOCOL_VERSION + ")";
        }
        if (hello.getVerify()) {
            // Refused before any page moves: otherwise the roots differ at the pause and the
            // migration fails there as a memory mismatch, blaming the memory for a version skew.
            Optional<String> skew = RegionDigests.schemeMismatch("the source", hello.getDigestScheme());
            if (skew.isPresent()) {
                return skew.get();
            }
        }
        if (!constantTimeEquals(hello.getToken(), token)) {
            return "wrong token for migration " + hello.getMigrationId();
        }
        if (state != State.PREPARED && state != State.RECEIVING) {
            return "migration " + migrationId() + " is " + state;
        }
        if (!hello.getSpec().equals(expected.spec())) {
            return "VM spec differs from the one prepared for migration " + migrationId();
        }
        if (hello.getRamBytes() != vm.memory().sizeBytes()
                || hello.getPageSize() != vm.memory().pageSize()) {
            return "RAM of " + Long.toUnsignedString(hello.getRamBytes()) + " bytes in "
                    + Integer.toUnsignedString(hello.getPageSize()) + "-byte pages; prepared "
                    + vm.memory().sizeBytes() + " in " + vm.memory().pageSize();
        }
        if (hello.getMode() != expected.mode()) {
            return "transfer mode " + hello.getMode() + ", prepared " + expected.mode();
        }
        if (hello.getWindowPages() != MigrationStreamRpc.WINDOW_PAGES) {
            return "window of " + Integer.toUnsignedString(hello.getWindowPages()) + " pages; this agent uses "
                    + MigrationStreamRpc.WINDOW_PAGES;
        }
        // uint32 on the wire: read unsigned, so that 2^31 and more are refused, not taken as negative.
        long laneIndex = Integer.toUnsignedLong(hello.getLane());
        long laneCount = Integer.toUnsignedLong(hello.getLaneCount());
        if (laneCount < 1 || laneCount > MigrationStreamRpc.MAX_LANES || laneIndex >= laneCount) {
            return "lane " + laneIndex + " of " + laneCount;
        }
        if (lanes == null) {
            lanes = new ReceiverLane[hello.getLaneCount()];
            laneFinished = new boolean[hello.getLaneCount()];
        } else if (lanes.length != hello.getLaneCount()) {
            return "lane count " + hello.getLaneCount() + " differs from the first lane's " + lanes.length;
        }
        if (lanes[hello.getLane()] != null) {
            return "lane " + hello.getLane() + " is already attached";
        }
        lanes[hello.getLane()] = lane;
        attached++;
        if (hello.getVerify() && regionDigests == null) {
            regionDigests = new RegionDigests(vm.memory().sizeBytes());
        }
        lastFrameAt = System.nanoTime();
        state = State.RECEIVING;
        if (arming == null && expected.mode() == TransferMode.TRANSFER_MODE_PRECOPY) {
            arming = new java.util.concurrent.CompletableFuture<>();
            java.util.concurrent.CompletableFuture<DeviceState.Loader> armed = arming;
            Thread.ofPlatform()
                    .daemon()
                    .name("ferry-recv-arm-" + expected.spec().getName())
                    .start(withFields(() -> {
                        try {
                            armed.complete(vm.deviceState().load(DeviceState.Scope.DEVICES));
                        } catch (Throwable t) {
                            armed.completeExceptionally(t);
                        }
                    }));
        }
        return null;
    }

    /** The loader opened when the migration started; its failure is this step's. */
    private DeviceState.Loader armedLoader(java.util.concurrent.CompletableFuture<DeviceState.Loader> arming)
            throws HypervisorException, MigrationException {
        try {
            return arming.get(applyTimeout.toNanos(), java.util.concurrent.TimeUnit.NANOSECONDS);
        } catch (java.util.concurrent.ExecutionException e) {
            if (e.getCause() instanceof HypervisorException h) {
                throw h;
            }
            throw new MigrationException(
                    MigrationStep.MIGRATION_STEP_DEVICE_STATE,
                    "cannot open the device-state load: " + e.getCause(),
                    e.getCause());
        } catch (java.util.concurrent.TimeoutException e) {
            throw new MigrationException(
                    MigrationStep.MIGRATION_STEP_DEVICE_STATE,
                    "the device-state load did not open within " + applyTimeout.toMillis() + " ms");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new MigrationException(MigrationStep.MIGRATION_STEP_DEVICE_STATE, "interrupted");
        }
    }

    /** A lane took a frame off the wire and applies it. */
    void frameArrived() {
        applying.incrementAndGet();
        lastFrameAt = System.nanoTime();
    }

    /** A lane finished applying a frame (whatever came of it). */
    void frameApplied() {
        lastFrameAt = System.nanoTime();
        applying.decrementAndGet();
    }

    /**
     * Starts watching the handshake and idle deadlines on {@code timers}; the checks run until the
     * migration is committed or discarded. A deadline that passes fails the migration on a thread of
     * its own (a discard closes the VM, which may take a moment), never on the timer.
     */
    public void watch(java.util.concurrent.ScheduledExecutorService timers) {
        schedule(
                timers,
                Math.min(deadlines.handshake().toNanos(), deadlines.idle().toNanos()));
    }

    private void schedule(java.util.concurrent.ScheduledExecutorService timers, long delayNanos) {
        try {
            timers.schedule(
                    () -> check(timers), Math.max(delayNanos, 1_000_000), java.util.concurrent.TimeUnit.NANOSECONDS);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // The agent is shutting down; it discards every incoming migration itself.
        }
    }

    private void check(java.util.concurrent.ScheduledExecutorService timers) {
        long now = System.nanoTime();
        long idle = deadlines.idle().toNanos();
        MigrationException expired = null;
        long next = idle;
        synchronized (this) {
            switch (state) {
                case COMMITTED, DISCARDED -> {
                    return;
                }
                case PREPARED, RECEIVING -> {
                    int laneCount = lanes == null ? 0 : lanes.length;
                    if (lanes == null || attached < laneCount) {
                        long left = preparedAt + deadlines.handshake().toNanos() - now;
                        if (left <= 0) {
                            expired = new MigrationException(
                                    MigrationStep.MIGRATION_STEP_HANDSHAKE,
                                    (lanes == null ? "no lane" : attached + " of " + laneCount + " lanes")
                                            + " said hello within " + MigrationException.describe(deadlines.handshake())
                                            + " of the prepare");
                        } else {
                            next = left;
                        }
                    } else {
                        MigrationStep step = finalLanes > 0
                                ? MigrationStep.MIGRATION_STEP_FINAL_PAGES
                                : MigrationStep.MIGRATION_STEP_PRECOPY;
                        expired = idleExpired(now, step);
                        next = idle - (now - lastFrameAt);
                    }
                }
                case SWITCHING -> {
                    // Waiting for other lanes' final pages; once all are in, the load and the digest take
                    // their time with the source rightly silent (the apply deadline bounds them).
                    if (expected.mode() == TransferMode.TRANSFER_MODE_PRECOPY && finalLanes < lanes.length) {
                        expired = idleExpired(now, MigrationStep.MIGRATION_STEP_FINAL_PAGES);
                        next = idle - (now - lastFrameAt);
                    }
                }
                case READY -> {
                    // The source is committing: its silence is expected, and a dead connection is
                    // noticed by keepalive, which makes the commit decide (see streamLost).
                }
            }
        }
        if (expired != null) {
            MigrationException e = expired;
            Thread.ofPlatform()
                    .daemon()
                    .name("ferry-recv-deadline-" + expected.spec().getName())
                    .start(withFields(() -> fail(e)));
            return;
        }
        schedule(timers, next <= 0 ? idle : next);
    }

    /** The idle deadline's failure at {@code step}, or null while the source is not silent for long enough. */
    private MigrationException idleExpired(long now, MigrationStep step) {
        if (applying.get() > 0 || now - lastFrameAt < deadlines.idle().toNanos()) {
            return null;
        }
        return new MigrationException(
                step, "no frame from the source for " + MigrationException.describe(deadlines.idle()));
    }

    /**
     * Lane {@code lane} delivered its final round, {@code round}. Each lane counts once, and all end
     * with the same round: a lane that ended early lost that round's pages on it.
     */
    synchronized void laneFinished(int lane, long round) throws MigrationException {
        MigrationStep step = MigrationStep.MIGRATION_STEP_FINAL_PAGES;
        if (laneFinished[lane]) {
            throw new MigrationException(step, "lane " + lane + " sent its final round end twice");
        }
        if (finalRound >= 0 && finalRound != round) {
            throw new MigrationException(
                    step,
                    "lane " + lane + " ended its pages with round " + round + ", others with final round "
                            + finalRound);
        }
        finalRound = round;
        laneFinished[lane] = true;
        finalLanes++;
        notifyAll();
    }

    /**
     * A bound on the device state a pre-copy destination holds before it loads it: far above what
     * a guest's devices save (Ferry's QEMU guests have no VGA; their state with option ROMs is a few
     * MiB), so only a broken or hostile source reaches it.
     */
    static final long MAX_HELD_DEVICE_STATE = 256L << 20;

    /** Device state held now, in bytes (tests). */
    synchronized long heldDeviceStateBytes() {
        return heldDeviceState.stream().mapToLong(ByteString::size).sum();
    }

    /**
     * A chunk of device state, from lane 0 (one at a time, in order). In pre-copy it is held until
     * the final pages are in (see {@link #heldDeviceState}); in a hypervisor-native transfer the
     * hypervisor's own stream orders RAM before devices, so it goes in as it comes. Opening the load
     * and writing into it may wait for the hypervisor, so neither happens under this migration's
     * lock: other lanes and a discard need it meanwhile.
     */
    void deviceState(ByteString chunk, boolean last) throws MigrationException {
        MigrationStep step = MigrationStep.MIGRATION_STEP_DEVICE_STATE;
        DeviceState.Loader l;
        synchronized (this) {
            if (state != State.RECEIVING && state != State.SWITCHING) {
                throw new MigrationException(step, "device state while " + state);
            }
            if (deviceStateComplete) {
                throw new MigrationException(step, "device state after its last chunk");
            }
            if (expected.mode() == TransferMode.TRANSFER_MODE_PRECOPY) {
                if (deviceStateBytes + chunk.size() > MAX_HELD_DEVICE_STATE) {
                    throw new MigrationException(
                            step,
                            "device state exceeds " + (MAX_HELD_DEVICE_STATE >> 20)
                                    + " MiB: no guest's devices save that much");
                }
                if (!chunk.isEmpty()) {
                    heldDeviceState.add(chunk);
                }
                deviceStateBytes += chunk.size();
                if (last) {
                    deviceStateComplete = true;
                    notifyAll();
                }
                return;
            }
            l = loader;
        }
        try {
            if (l == null) {
                l = openLoader(DeviceState.Scope.EVERYTHING);
                if (l == null) {
                    return; // discarded meanwhile
                }
            }
            if (!chunk.isEmpty() && !writeDeviceState(l, chunk)) {
                return; // discarded meanwhile
            }
            synchronized (this) {
                deviceStateBytes += chunk.size();
                if (last) {
                    deviceStateComplete = true;
                    notifyAll();
                }
            }
        } catch (HypervisorException | java.io.IOException | MalformedFrameException e) {
            throw new MigrationException(step, "cannot load device state: " + e.getMessage(), e);
        }
    }

    /**
     * The device-state loader: the one armed as the migration started, or one opened now for {@code
     * scope}; null when the migration was discarded meanwhile (the loader is then closed).
     */
    private DeviceState.Loader openLoader(DeviceState.Scope scope) throws HypervisorException, MigrationException {
        java.util.concurrent.CompletableFuture<DeviceState.Loader> armed;
        synchronized (this) {
            armed = arming;
        }
        DeviceState.Loader l =
                armed != null ? armedLoader(armed) : vm.deviceState().load(scope);
        synchronized (this) {
            if (state == State.DISCARDED) {
                // The discard did not see this loader; closing twice (the armed one) is harmless.
                l.close();
                return null;
            }
            loader = l;
        }
        return l;
    }

    /** Writes a chunk into the load; false when the migration was discarded and nothing was written. */
    private boolean writeDeviceState(DeviceState.Loader l, ByteString chunk)
            throws java.io.IOException, MalformedFrameException {
        ByteBuffer data = chunk.asReadOnlyByteBuffer();
        return writeIntoVm(() -> {
                    l.write(data);
                    return Boolean.TRUE;
                })
                != null;
    }

    /** What a lane writes into the VM: pages, or device state. */
    @FunctionalInterface
    interface VmWrite<T> {
        T run() throws java.io.IOException, MalformedFrameException;
    }

    /**
     * Runs a lane's write into the VM, or returns null without running it once the migration is
     * being discarded. A discard closes the VM only after every write already running has ended:
     * the RAM file's descriptor number may belong to another file (another guest's RAM) as soon as
     * it is closed, so a late write would land there.
     */
    <T> T writeIntoVm(VmWrite<T> write) throws java.io.IOException, MalformedFrameException {
        vmWrites.readLock().lock();
        try {
            if (closing) {
                return null;
            }
            return write.run();
        } finally {
            vmWrites.readLock().unlock();
        }
    }

    /** The source is paused and everything is on its way: finish applying, then answer Ready. */
    void switchover(Switchover sw) throws MigrationException {
        MigrationStep step = MigrationStep.MIGRATION_STEP_FINAL_PAGES;
        synchronized (this) {
            if (state != State.RECEIVING) {
                throw new MigrationException(step, "switchover while " + state);
            }
            // What can never arrive any more is refused now rather than waited for until the apply
            // timeout: lanes that never said hello, and what lane 0 carries before its Switchover
            // (its final round end and the device state's last chunk).
            if (attached < lanes.length) {
                throw new MigrationException(
                        step, "switchover with " + attached + " of " + lanes.length + " lanes attached");
            }
            if (!deviceStateComplete) {
                throw new MigrationException(step, "switchover before the device state's last chunk");
            }
            if (expected.mode() == TransferMode.TRANSFER_MODE_PRECOPY) {
                long round = Integer.toUnsignedLong(sw.getFinalRound());
                if (!laneFinished[0]) {
                    throw new MigrationException(step, "switchover before lane 0's final round end");
                }
                if (round != finalRound) {
                    throw new MigrationException(
                            step, "switchover names final round " + round + ", the lanes ended with " + finalRound);
                }
            }
            state = State.SWITCHING;
        }
        Thread.ofPlatform()
                .daemon()
                .name("ferry-recv-switchover-" + expected.spec().getName())
                .start(withFields(() -> {
                    try {
                        Ready ready = applyFinal(sw);
                        ReceiverLane first;
                        synchronized (this) {
                            if (state != State.SWITCHING) {
                                return;
                            }
                            state = State.READY;
                            first = lanes[0];
                        }
                        first.send(ReceiverFrame.newBuilder().setReady(ready).build());
                    } catch (MigrationException e) {
                        fail(e);
                    } catch (InterruptedException e) {
                        fail(new MigrationException(MigrationStep.MIGRATION_STEP_FINAL_PAGES, "interrupted"));
                    }
                }));
    }

    /** This side's digest at the switchover, with what its audit found and what reading took. */
    private record DestinationDigest(long root, int reread, RegionDigests.Audit audit, long nanos) {}

    /**
     * Refreshes the leaves the lanes marked, then re-reads a seeded sample of the others (the
     * destination's audit: a leaf whose memory changed without a lane writing it, which nothing
     * else may do to a paused guest's RAM here, is caught in a sample, as the source's audit
     * catches a dirty tracking that missed writes), off the calling thread.
     */
    private java.util.concurrent.CompletableFuture<DestinationDigest> destinationDigest(RegionDigests d) {
        dev.ferry.hypervisor.GuestMemory memory = vm.memory();
        long t = System.nanoTime();
        return d.refreshAsync(memory).thenApply(reread -> {
            RegionDigests.Audit audit = d.audit(
                    memory,
                    java.util.concurrent.ThreadLocalRandom.current().nextLong(),
                    dev.ferry.migration.precopy.PreCopySender.AUDIT_LEAVES);
            return new DestinationDigest(d.combined(), reread, audit, System.nanoTime() - t);
        });
    }

    private Ready applyFinal(Switchover sw) throws MigrationException, InterruptedException {
        long start = System.nanoTime();
        long deadline = start + applyTimeout.toNanos();
        DeviceState.Loader loader;
        long deviceStateBytes;
        List<ByteString> held;
        synchronized (this) {
            while ((expected.mode() == TransferMode.TRANSFER_MODE_PRECOPY && finalLanes < lanes.length)
                    || !deviceStateComplete) {
                if (state != State.SWITCHING) {
                    throw new MigrationException(
                            MigrationStep.MIGRATION_STEP_FINAL_PAGES, "discarded: " + discardReason);
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new MigrationException(
                            MigrationStep.MIGRATION_STEP_FINAL_PAGES,
                            String.format(
                                    "final pages of %d of %d lanes and %s device state after %d ms",
                                    finalLanes,
                                    lanes.length,
                                    deviceStateComplete ? "all" : "incomplete",
                                    applyTimeout.toMillis()));
                }
                wait(Math.max(1, left / 1_000_000));
            }
            loader = this.loader;
            deviceStateBytes = this.deviceStateBytes;
            held = List.copyOf(heldDeviceState);
            heldDeviceState.clear();
        }
        // Every final page is in RAM and marked: the digests are refreshed and audited beside the
        // device-state load, not after it (both are in the pause).
        RegionDigests digests = sw.getVerify() ? regionDigests : null;
        java.util.concurrent.CompletableFuture<DestinationDigest> refreshed =
                digests == null ? null : destinationDigest(digests);
        try {
            if (expected.mode() == TransferMode.TRANSFER_MODE_PRECOPY) {
                // Every lane's final pages are in RAM now: only from here may the hypervisor read it.
                loader = openLoader(DeviceState.Scope.DEVICES);
                if (loader == null) {
                    throw new MigrationException(
                            MigrationStep.MIGRATION_STEP_DEVICE_STATE, "discarded: " + discardReason());
                }
                for (ByteString chunk : held) {
                    if (!writeDeviceState(loader, chunk)) {
                        throw new MigrationException(
                                MigrationStep.MIGRATION_STEP_DEVICE_STATE, "discarded: " + discardReason());
                    }
                }
            }
            loader.finish(applyTimeout);
            // Loaded: its socket and selector are of no further use (closing again on a discard is harmless).
            loader.close();
        } catch (HypervisorException | java.io.IOException | MalformedFrameException e) {
            throw new MigrationException(
                    MigrationStep.MIGRATION_STEP_DEVICE_STATE, "device state did not load: " + e.getMessage(), e);
        }
        continueConsole(sw);
        Ready.Builder ready = Ready.newBuilder()
                .setApplyWaitMs((System.nanoTime() - start) / 1_000_000)
                .setDeviceStateBytes(deviceStateBytes);
        if (sw.getVerify()) {
            long t = System.nanoTime();
            try {
                if (digests == null) {
                    ready.setRamDigest(RamDigest.of(vm.memory()));
                } else {
                    DestinationDigest dd = refreshed.join();
                    long waited = System.nanoTime() - t;
                    if (!dd.audit().clean()) {
                        throw new MigrationException(
                                MigrationStep.MIGRATION_STEP_VERIFY,
                                "guest RAM on the destination changed behind the migration at offset(s) "
                                        + dd.audit().mismatchedOffsets().stream()
                                                .map(o -> "0x" + Long.toHexString(o))
                                                .toList());
                    }
                    ready.setRamDigest(dd.root());
                    log.info(
                            "migration {}: verify re-read {} of {} RAM leaves of {} KiB and audited {} more in {}"
                                    + " ms beside the device-state load, then waited {} ms for it",
                            expected.migrationId(),
                            dd.reread(),
                            digests.leaves(),
                            digests.leafBytes() >> 10,
                            dd.audit().sampled(),
                            dd.nanos() / 1_000_000,
                            waited / 1_000_000);
                }
            } catch (java.io.UncheckedIOException | java.util.concurrent.CompletionException e) {
                throw new MigrationException(
                        MigrationStep.MIGRATION_STEP_VERIFY, "cannot read guest memory: " + e.getMessage(), e);
            }
            ready.setVerifyMs((System.nanoTime() - t) / 1_000_000);
        }
        return ready.build();
    }

    /**
     * The source's console history (its tail as of the pause) becomes the start of this host's,
     * before the guest runs here, so the VM's console reads on without a gap. A console that
     * cannot be continued costs the history, not the migration.
     */
    private void continueConsole(Switchover sw) {
        if (!sw.hasConsoleTail()) {
            return;
        }
        var tail = sw.getConsoleTail();
        vm.console().ifPresent(h -> {
            try {
                h.continueFrom(
                        new dev.ferry.hypervisor.console.ConsoleHistory.Chunk(
                                tail.getGeneration(),
                                tail.getOffset(),
                                tail.getData().toByteArray()),
                        consoleTimes(tail));
            } catch (java.io.IOException | RuntimeException e) {
                log.warn(
                        "migration {}: the console history of {} starts afresh here: {}",
                        expected.migrationId(),
                        expected.spec().getName(),
                        e.getMessage());
            }
        });
    }

    /** When the tail's bytes were printed; a bad mark from the source costs the times (--since then shows all), not the history. */
    private java.util.List<dev.ferry.hypervisor.console.ConsoleTimeIndex.Mark> consoleTimes(
            dev.ferry.proto.migration.ConsoleTail tail) {
        java.util.List<dev.ferry.hypervisor.console.ConsoleTimeIndex.Mark> times = new java.util.ArrayList<>();
        long prev = -1;
        for (var m : tail.getTimesList()) {
            if (m.getOffset() < 0 || m.getOffset() <= prev || m.getLastUnixMs() < m.getFirstUnixMs()) {
                log.warn("migration {}: console times out of order from the source; dropped", expected.migrationId());
                return java.util.List.of();
            }
            prev = m.getOffset();
            times.add(new dev.ferry.hypervisor.console.ConsoleTimeIndex.Mark(
                    m.getOffset(), m.getFirstUnixMs(), m.getLastUnixMs()));
        }
        return times;
    }

    /** The source committed: confirm, resume the VM, report back. */
    void commit(Commit c) throws MigrationException {
        synchronized (this) {
            if (state != State.READY) {
                throw new MigrationException(MigrationStep.MIGRATION_STEP_COMMIT, "commit while " + state);
            }
        }
        CommitRequest request = commitRequest();
        if (c.getEpoch() != request.newEpoch()) {
            throw new MigrationException(
                    MigrationStep.MIGRATION_STEP_COMMIT,
                    "commit for epoch " + c.getEpoch() + ", expected " + request.newEpoch());
        }
        CommitOutcome outcome;
        long confirmStart = System.nanoTime();
        try {
            outcome = commit.confirm(request);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            outcome = CommitOutcome.UNKNOWN;
        }
        settle(
                outcome,
                "the source's commit frame, confirmed in " + (System.nanoTime() - confirmStart) / 1_000_000 + " ms");
    }

    private CommitRequest commitRequest() {
        return new CommitRequest(
                expected.spec().getName(),
                expected.migrationId(),
                expected.sourceHost(),
                expected.hostId(),
                expected.epoch());
    }

    /** Acts on a known or unknown commit outcome while READY. */
    private void settle(CommitOutcome outcome, String how) throws MigrationException {
        switch (outcome) {
            case COMMITTED -> resumeCommitted(how);
            case REJECTED ->
                abandon(new MigrationException(
                        MigrationStep.MIGRATION_STEP_COMMIT, "the commit did not happen (" + how + ")"));
            case UNKNOWN -> {
                log.warn(
                        "migration {}: commit outcome unknown; {} stays paused here until it is known",
                        migrationId(),
                        expected.spec().getName());
                Thread.ofPlatform()
                        .daemon()
                        .name("ferry-recv-resolve-" + expected.spec().getName())
                        .start(withFields(this::resolveLoop));
            }
        }
    }

    private void resumeCommitted(String how) throws MigrationException {
        synchronized (this) {
            if (state != State.READY) {
                return;
            }
            state = State.COMMITTED;
        }
        long epoch = commitRequest().newEpoch();
        long resumeStart = System.nanoTime();
        try {
            vm.resume();
        } catch (HypervisorException e) {
            log.error(
                    "migration {}: {} is committed here but did not resume: {}",
                    migrationId(),
                    expected.spec().getName(),
                    e.getMessage());
            listener.committed(this, epoch);
            throw new MigrationException(
                    MigrationStep.MIGRATION_STEP_RESUME, "committed but resume failed: " + e.getMessage(), e);
        }
        log.info(
                "migration {}: {} committed at epoch {} ({}) and running, resumed in {} ms",
                migrationId(),
                expected.spec().getName(),
                epoch,
                how,
                (System.nanoTime() - resumeStart) / 1_000_000);
        listener.committed(this, epoch);
        ReceiverLane[] lanes;
        synchronized (this) {
            lanes = this.lanes;
        }
        if (lanes == null) {
            return;
        }
        if (lanes[0] != null) {
            lanes[0].send(ReceiverFrame.newBuilder()
                    .setResumed(Resumed.newBuilder().setEpoch(epoch))
                    .build());
        }
        for (ReceiverLane lane : lanes) {
            if (lane != null) {
                lane.complete();
            }
        }
    }

    private void resolveLoop() {
        while (true) {
            synchronized (this) {
                if (state != State.READY) {
                    return;
                }
            }
            try {
                CommitOutcome o =
                        commit.resolve(commitRequest(), OwnershipCommit.Side.DESTINATION, Duration.ofSeconds(10));
                if (o != CommitOutcome.UNKNOWN) {
                    settle(o, "resolved after the stream was lost");
                    return;
                }
            } catch (InterruptedException e) {
                return;
            } catch (MigrationException e) {
                abandon(e);
                return;
            }
        }
    }

    /** A lane's stream ended or broke. */
    void streamLost(int lane, String why) {
        State s;
        synchronized (this) {
            s = state;
        }
        switch (s) {
            case COMMITTED, DISCARDED -> {}
            case READY -> {
                log.warn("migration {}: lane {} lost while waiting for the commit: {}", migrationId(), lane, why);
                resolveFromReady("resolved after the stream was lost");
            }
            default -> discard("lane " + lane + " lost: " + why, null);
        }
    }

    /** The destination's hypervisor process ended by itself (crashed or was killed). */
    public void hypervisorDied(String reason) {
        MigrationStep step;
        synchronized (this) {
            step = switch (state) {
                case PREPARED, RECEIVING -> MigrationStep.MIGRATION_STEP_PRECOPY;
                case SWITCHING -> MigrationStep.MIGRATION_STEP_DEVICE_STATE;
                case READY -> MigrationStep.MIGRATION_STEP_COMMIT;
                case COMMITTED, DISCARDED -> null;
            };
        }
        if (step != null) {
            fail(new MigrationException(step, "the destination VM's hypervisor ended: " + reason));
        }
    }

    /** The source aborted. While Ready the commit still decides: a source's word does not undo its commit. */
    void sourceAborted(Abort abort) {
        String reason = (abort.getCancelled() ? "cancelled on the source" : "source aborted") + " at "
                + MigrationException.describe(abort.getStep()) + ": " + abort.getReason();
        boolean ready;
        synchronized (this) {
            ready = state == State.READY;
        }
        if (ready) {
            resolveFromReady("resolved after the " + reason);
            return;
        }
        discard(reason, null);
    }

    /**
     * Something here failed: tell the source which step, then discard. Once Ready, though, the VM
     * may be this host's already (the source's commit can land before its Commit frame arrives), so
     * the commit decides, as when the stream is lost: in a cluster, asking it vetoes a commit not yet
     * made.
     */
    void fail(MigrationException e) {
        boolean ready;
        synchronized (this) {
            ready = state == State.READY;
        }
        if (ready) {
            log.warn("migration {}: {} while ready for the commit; the commit decides", migrationId(), e.getMessage());
            resolveFromReady("resolved after " + e.getMessage());
            return;
        }
        abandon(e);
    }

    /** Discards, telling the source which step failed: for failures known to leave the VM the source's. */
    private void abandon(MigrationException e) {
        discard(
                e.getMessage(),
                Abort.newBuilder().setStep(e.step()).setReason(e.reason()).build());
    }

    /** While Ready: asks the commit which way it went and acts on it (resume, discard, or wait to know). */
    private void resolveFromReady(String how) {
        try {
            settle(commit.resolve(commitRequest(), OwnershipCommit.Side.DESTINATION, Duration.ofSeconds(10)), how);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (MigrationException e) {
            // From the resume of a committed VM: past the commit, nothing is discarded.
            abandon(e);
        }
    }

    /** Ends the migration here: the VM and its files go, the source keeps running. Idempotent. */
    public void discard(String reason, Abort tellSource) {
        ReceiverLane[] toClose;
        DeviceState.Loader l;
        java.util.concurrent.CompletableFuture<DeviceState.Loader> unclaimed = null;
        synchronized (this) {
            if (state == State.COMMITTED) {
                return;
            }
            if (state == State.DISCARDED) {
                toClose = null;
                l = null;
            } else {
                state = State.DISCARDED;
                closing = true;
                discardReason = reason;
                heldDeviceState.clear(); // up to MAX_HELD_DEVICE_STATE: not kept for as long as this object is
                toClose = lanes == null ? new ReceiverLane[0] : lanes;
                l = loader;
                unclaimed = loader == null ? arming : null;
                notifyAll();
            }
        }
        if (toClose == null) {
            // Another thread is discarding: return only once the VM is really gone, so that a
            // shutting-down agent leaves no hypervisor process behind.
            awaitDiscarded();
            return;
        }
        log.info(
                "migration {}: discarding incoming {}: {}",
                migrationId(),
                expected.spec().getName(),
                reason);
        for (ReceiverLane lane : toClose) {
            if (lane != null) {
                lane.abort(tellSource);
            }
        }
        try {
            if (l != null) {
                l.close();
            }
            if (unclaimed != null) {
                unclaimed.thenAccept(DeviceState.Loader::close);
            }
            // Writes already running end first (the loader closed above cannot block one); later
            // ones see closing and do nothing.
            vmWrites.writeLock().lock();
            vmWrites.writeLock().unlock();
            vm.close();
            listener.discarded(this, reason);
        } finally {
            discarded.countDown();
        }
    }

    private void awaitDiscarded() {
        try {
            if (!discarded.await(60, java.util.concurrent.TimeUnit.SECONDS)) {
                log.warn(
                        "migration {}: discarding {} takes longer than a minute",
                        migrationId(),
                        expected.spec().getName());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static boolean constantTimeEquals(String a, String b) {
        return MessageDigest.isEqual(a.getBytes(StandardCharsets.UTF_8), b.getBytes(StandardCharsets.UTF_8));
    }
}
