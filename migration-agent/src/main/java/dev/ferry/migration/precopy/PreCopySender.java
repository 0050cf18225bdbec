package dev.ferry.migration.precopy;

import com.google.protobuf.ByteString;
import dev.ferry.hypervisor.DeviceState;
import dev.ferry.hypervisor.DirtyLog;
import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.logs.LogContext;
import dev.ferry.migration.MigrationException;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.migration.RamDigest;
import dev.ferry.migration.RegionDigests;
import dev.ferry.migration.commit.CommitOutcome;
import dev.ferry.migration.commit.CommitRequest;
import dev.ferry.migration.commit.OwnershipCommit;
import dev.ferry.migration.policy.ConvergencePolicy;
import dev.ferry.migration.wire.BatchCodec;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.agent.PrepareIncomingResponse;
import dev.ferry.proto.agent.RoundProgress;
import dev.ferry.proto.migration.Abort;
import dev.ferry.proto.migration.Commit;
import dev.ferry.proto.migration.DeviceStateChunk;
import dev.ferry.proto.migration.Hello;
import dev.ferry.proto.migration.HelloAck;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.Ready;
import dev.ferry.proto.migration.RoundEnd;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.proto.migration.Switchover;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.PeerRequirement;
import dev.ferry.rpc.Transport;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The source side of a live migration: the pre-copy loop.
 *
 * <p>Round 0 sends every page (zero pages as runs). Each later round first collects-and-resets the
 * dirty log, asks the {@link ConvergencePolicy} whether the rest fits the downtime budget, and
 * either sends those pages or switches over: pause, final collection, final pages and device
 * state, wait until the destination has applied everything, commit ownership, wait until the
 * destination runs. Any failure before the commit leaves the VM running here; a commit whose
 * outcome is not known leaves it paused, because resuming could run it twice.
 *
 * <p>Not reusable: one instance per migration.
 */
public final class PreCopySender {
    private static final Logger log = LoggerFactory.getLogger(PreCopySender.class);

    /** Asks the destination agent to expect the VM (its PrepareIncoming call). */
    public interface TargetPreparer {
        PrepareIncomingResponse prepare(PrepareIncomingRequest request) throws MigrationException;

        /** Best effort: the migration failed; the destination should discard what it prepared. */
        void abandon(String migrationId, String reason);
    }

    /** Receives progress events; called from the migration thread, must not block for long. */
    @FunctionalInterface
    public interface Listener {
        void onEvent(MigrationEvent event);
    }

    /**
     * What bounds the source's waits for its destination (docs/ARCHITECTURE.md, "Deadlines", lists
     * every wait and what bounds it). A destination whose connection died is noticed sooner by the
     * transport's keepalive; these bound a connected destination that does not answer or take data.
     *
     * @param handshake every lane's hello acknowledged, counted from when the lanes are opened
     * @param ready the destination applied the final pages and device state (and its digest, when
     *     verifying), counted from the Switchover: the guest is paused meanwhile
     * @param resumed the destination says it resumed, after the commit
     * @param resolve learning a commit's outcome when it is unknown
     * @param stall a lane's stream takes no data (its flow-control window stays shut) for this long:
     *     a destination that stopped reading, whether pre-copy runs or the guest is paused
     */
    public record Timeouts(Duration handshake, Duration ready, Duration resumed, Duration resolve, Duration stall) {
        public static Timeouts defaults() {
            return new Timeouts(
                    Duration.ofSeconds(30),
                    Duration.ofSeconds(120),
                    Duration.ofSeconds(30),
                    Duration.ofSeconds(30),
                    // A destination applies a window in milliseconds; a stream shut for this long is
                    // one that stopped reading, even across a slow link (8 MiB window at 10 Mbit/s: 7 s).
                    Duration.ofSeconds(30));
        }

        public Timeouts scaled(double factor) {
            return new Timeouts(
                    scale(handshake, factor),
                    scale(ready, factor),
                    scale(resumed, factor),
                    scale(resolve, factor),
                    scale(stall, factor));
        }

        private static Duration scale(Duration d, double f) {
            return Duration.ofNanos((long) (d.toNanos() * f));
        }
    }

    /**
     * @param lanes parallel streams (each on its own connection)
     * @param maxBandwidth bytes per second over all lanes, 0 for unlimited
     * @param verify compare a whole-RAM digest of both sides before the destination resumes
     */
    public record Options(
            int lanes,
            long maxBandwidth,
            boolean verify,
            ConvergencePolicy.Settings policy,
            TransferMode mode,
            Timeouts timeouts) {
        public Options {
            if (lanes < 1 || lanes > MigrationStreamRpc.MAX_LANES) {
                throw new IllegalArgumentException(
                        "streams must be between 1 and " + MigrationStreamRpc.MAX_LANES + ", got " + lanes);
            }
            if (maxBandwidth < 0) {
                throw new IllegalArgumentException("max bandwidth must not be negative");
            }
            Objects.requireNonNull(policy);
            Objects.requireNonNull(timeouts);
            if (mode == null || mode == TransferMode.TRANSFER_MODE_INVALID) {
                mode = TransferMode.TRANSFER_MODE_PRECOPY;
            }
        }
    }

    /** Who is involved. */
    public record Parties(String migrationId, String vmName, String sourceHost, String targetHost, long epoch) {}

    private final Parties parties;
    private final VmInstance vm;
    private final Options options;
    private final Transport transport;
    private final TargetPreparer preparer;
    private final OwnershipCommit commit;
    /** The commit's reads, taken at the pause ({@link OwnershipCommit#prepare}); null before. */
    private CompletableFuture<Void> commitReadAhead;
    /** Where reads ahead of a commit wait on ZooKeeper: virtual threads cost nothing meanwhile. */
    private static final ExecutorService COMMIT_READERS = Executors.newThreadPerTaskExecutor(
            Thread.ofVirtual().name("ferry-commit-read-", 0).factory());

    private final Listener listener;

    private volatile SenderFaults faults = SenderFaults.NONE;
    private volatile boolean cancelRequested;
    /** The device-state save of the switchover, once started. */
    private volatile CompletableFuture<Long> deviceSave;

    private volatile boolean commitStarted;
    // The commit is known not to have happened (REJECTED): the source may resume if the commit says so.
    private volatile boolean commitRejected;
    private volatile boolean prepared;
    /** The destination's RAM digest differed from the source's at the pause point (for the metrics). */
    private volatile boolean memoryMismatch;

    private volatile MigrationStep step = MigrationStep.MIGRATION_STEP_PREPARE;
    private final List<SenderLane> lanes = new ArrayList<>();
    private ExecutorService laneThreads;
    private java.util.concurrent.ScheduledExecutorService progressTicker;
    private volatile RateLimiter rateLimiter;
    /** The limits in force: the options', until `ferry migrate set` changes them. */
    private volatile ConvergencePolicy.Settings policy;

    private volatile long maxBandwidth;

    private final AtomicLong wireBytes = new AtomicLong();
    private final AtomicLong pagesSent = new AtomicLong();
    // Written by the sender thread only; read by the progress ticker.
    private volatile int rounds;
    private volatile long startNanos;

    public PreCopySender(
            Parties parties,
            VmInstance vm,
            Options options,
            Transport transport,
            TargetPreparer preparer,
            OwnershipCommit commit,
            Listener listener) {
        this.parties = parties;
        this.vm = vm;
        this.options = options;
        this.policy = options.policy();
        this.maxBandwidth = options.maxBandwidth();
        this.transport = transport;
        this.preparer = preparer;
        this.commit = commit;
        this.listener = listener;
    }

    /**
     * Asks the migration to stop. Honoured at any step before the commit; after it, the migration
     * completes. Returns false when it is too late.
     */
    /**
     * Changes the limits while the migration runs: {@code downtime} (null: unchanged) from the next
     * round's decision on, {@code bytesPerSecond} (null: unchanged, 0: unlimited) for the next batch
     * sent. Returns the limits now in force.
     */
    public synchronized Limits setLimits(Duration downtime, Long bytesPerSecond) {
        if (downtime != null) {
            ConvergencePolicy.Settings p = policy;
            policy = new ConvergencePolicy.Settings(
                    downtime, p.maxRounds(), p.maxTime(), p.stallRounds(), p.onTimeout());
        }
        if (bytesPerSecond != null) {
            if (bytesPerSecond < 0) {
                throw new IllegalArgumentException("max bandwidth must not be negative");
            }
            maxBandwidth = bytesPerSecond;
            RateLimiter r = rateLimiter;
            if (r != null) {
                r.setRate(bytesPerSecond);
            }
        }
        log.info(
                "migration {} of {}: limits now {} ms downtime, {}",
                parties.migrationId(),
                parties.vmName(),
                policy.downtimeLimit().toMillis(),
                maxBandwidth == 0 ? "no bandwidth cap" : (maxBandwidth >> 20) + " MiB/s");
        // Watchers and the migration's record see the change and the round it came in.
        long elapsedMs = startNanos == 0 ? 0 : (System.nanoTime() - startNanos) / 1_000_000;
        dev.ferry.proto.agent.LimitChange change = dev.ferry.proto.agent.LimitChange.newBuilder()
                .setRound(rounds)
                .setElapsedMs(elapsedMs)
                .setDowntimeMs((int) policy.downtimeLimit().toMillis())
                .setMaxBandwidthBytesPerSec(maxBandwidth)
                .build();
        emit(MigrationEvent.newBuilder()
                .setPhase(MigrationPhase.MIGRATION_PHASE_ROUND)
                .setMigrationId(parties.migrationId())
                .setLimits(change)
                .setMessage(describe(change))
                .build());
        return limits();
    }

    /** "limits changed in round 3: downtime 500 ms, bandwidth 64 MiB/s". */
    private static String describe(dev.ferry.proto.agent.LimitChange c) {
        return "limits changed in round " + c.getRound() + ": downtime " + c.getDowntimeMs() + " ms, bandwidth "
                + (c.getMaxBandwidthBytesPerSec() == 0
                        ? "unlimited"
                        : c.getMaxBandwidthBytesPerSec() >= 1 << 20
                                ? (c.getMaxBandwidthBytesPerSec() >> 20) + " MiB/s"
                                : c.getMaxBandwidthBytesPerSec() + " B/s");
    }

    /** The limits in force. */
    public Limits limits() {
        return new Limits(policy.downtimeLimit(), maxBandwidth);
    }

    /** A running migration's limits. */
    public record Limits(Duration downtime, long maxBandwidth) {}

    public boolean cancel() {
        cancelRequested = true;
        return !commitStarted;
    }

    /** A test's faults for this migration (never set in production; see {@link SenderFaults}). */
    public void injectFaults(SenderFaults faults) {
        this.faults = Objects.requireNonNull(faults);
    }

    /** True once the commit was attempted: from then on the source must not resume on its own. */
    public boolean commitStarted() {
        return commitStarted;
    }

    public MigrationStep currentStep() {
        return step;
    }

    /** True once the verification found the destination's RAM different from the source's. */
    public boolean memoryMismatch() {
        return memoryMismatch;
    }

    /**
     * Runs the migration. Returns the summary of a completed migration; throws when it failed or was
     * cancelled, after restoring the source as the failure table in docs/ARCHITECTURE.md says.
     */
    public MigrationSummary run() throws MigrationException {
        startNanos = System.nanoTime();
        rateLimiter = new RateLimiter(maxBandwidth);
        laneThreads = Executors.newFixedThreadPool(
                options.lanes(),
                LogContext.inheriting(Thread.ofPlatform()
                        .daemon()
                        .name("ferry-send-" + parties.vmName() + "-", 0)
                        .factory()));
        progressTicker = Executors.newSingleThreadScheduledExecutor(LogContext.inheriting(Thread.ofPlatform()
                .daemon()
                .name("ferry-progress-" + parties.vmName())
                .factory()));
        boolean paused = false;
        DirtyLog dirtyLog = null;
        try {
            emit(MigrationPhase.MIGRATION_PHASE_PREPARING, null, "preparing " + parties.targetHost());
            GuestMemory memory = vm.memory();
            if (options.mode() == TransferMode.TRANSFER_MODE_PRECOPY) {
                dirtyLog = vm.dirtyLog()
                        .orElseThrow(
                                () -> new MigrationException(
                                        MigrationStep.MIGRATION_STEP_PREPARE,
                                        "this host cannot track guest writes, so Ferry pre-copy is not possible here; use --mode qemu-native"));
            }
            PrepareIncomingResponse incoming = preparer.prepare(PrepareIncomingRequest.newBuilder()
                    .setMigrationId(parties.migrationId())
                    .setSpec(vm.spec())
                    .setSourceHost(parties.sourceHost())
                    .setMode(options.mode())
                    .setEpoch(parties.epoch())
                    .build());
            prepared = true;
            checkCancel();
            openLanes(incoming, memory);

            SwitchoverPlan plan;
            if (options.mode() == TransferMode.TRANSFER_MODE_PRECOPY) {
                plan = precopy(memory, dirtyLog);
            } else {
                plan = new SwitchoverPlan(null, false, null);
            }
            faults.beforeSwitchover();
            paused = true; // from here on, a failure must resume the source
            return switchover(memory, dirtyLog, plan);
        } catch (MigrationException e) {
            fail(e, paused);
            throw e;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            MigrationException me = new MigrationException(step, "interrupted");
            fail(me, paused);
            throw me;
        } catch (RuntimeException | Error e) {
            // A bug or an Error (a class that failed to load, a stack overflow) ends the migration like
            // any failure: the source is restored as the failure table says and the caller is answered.
            log.error("migration {} of {} ended abnormally", parties.migrationId(), parties.vmName(), e);
            MigrationException me = new MigrationException(step, "internal error: " + e, e);
            fail(me, paused);
            throw me;
        } finally {
            if (dirtyLog != null) {
                dirtyLog.stop();
            }
            for (SenderLane lane : lanes) {
                lane.close();
            }
            laneThreads.shutdownNow();
            progressTicker.shutdownNow();
        }
    }

    private void openLanes(PrepareIncomingResponse prepared, GuestMemory memory)
            throws MigrationException, InterruptedException {
        step = MigrationStep.MIGRATION_STEP_HANDSHAKE;
        Endpoint endpoint;
        try {
            endpoint = Endpoint.parse(prepared.getStreamEndpoint());
        } catch (IllegalArgumentException e) {
            throw new MigrationException(step, "destination gave a bad stream endpoint: " + e.getMessage());
        }
        for (int i = 0; i < options.lanes(); i++) {
            SenderLane lane = new SenderLane(
                    i,
                    transport.laneChannel(endpoint, PeerRequirement.agent(parties.targetHost())),
                    () -> cancelRequested && !commitStarted,
                    options.timeouts().stall());
            lanes.add(lane);
            lane.open();
        }
        boolean verifying = options.verify() && options.mode() == TransferMode.TRANSFER_MODE_PRECOPY;
        for (SenderLane lane : lanes) {
            lane.send(
                    SenderFrame.newBuilder()
                            .setHello(Hello.newBuilder()
                                    .setProtocolVersion(MigrationStreamRpc.PROTOCOL_VERSION)
                                    .setMigrationId(parties.migrationId())
                                    .setToken(prepared.getToken())
                                    .setSpec(vm.spec())
                                    .setRamBytes(memory.sizeBytes())
                                    .setPageSize(memory.pageSize())
                                    .setLane(lane.index)
                                    .setLaneCount(options.lanes())
                                    .setSourceHost(parties.sourceHost())
                                    .setMode(options.mode())
                                    .setWindowPages(MigrationStreamRpc.WINDOW_PAGES)
                                    .setVerify(verifying)
                                    .setDigestScheme(RegionDigests.SCHEME))
                            .build(),
                    step);
        }
        long timeout = options.timeouts().handshake().toNanos();
        for (SenderLane lane : lanes) {
            HelloAck ack = lane.await(lane.helloAck, step, timeout, true, "the handshake");
            // An older destination accepts the Hello (it does not know the field) and would answer
            // the pause with a root of its own scheme: a mismatch that blames the memory.
            Optional<String> skew = verifying
                    ? RegionDigests.schemeMismatch("the destination", ack.getDigestScheme())
                    : Optional.empty();
            if (skew.isPresent()) {
                throw new MigrationException(step, skew.get());
            }
        }
    }

    /** What the pre-copy loop leaves for the switchover. */
    private record SwitchoverPlan(PageBitmap pending, boolean forced, String forcedReason) {}

    /**
     * Leaves of guest RAM (16 KiB each up to 8 GiB) a verified migration's source re-reads at the
     * pause in any case: a seeded random sample spread over all of RAM, one from each of as many
     * equal stretches, so that each verified migration also checks the tracking itself (see
     * {@link RegionDigests#audit}). 128 leaves are 2 MiB: well under a millisecond to read.
     */
    public static final int AUDIT_LEAVES = 128;

    /** With --verify: digests of the source's RAM by region, kept current through the rounds. */
    private RegionDigests sourceRegions;

    private SwitchoverPlan precopy(GuestMemory memory, DirtyLog dirtyLog)
            throws MigrationException, InterruptedException {
        step = MigrationStep.MIGRATION_STEP_PRECOPY;
        long pageCount = memory.pageCount();
        int pageSize = memory.pageSize();
        try {
            dirtyLog.start();
        } catch (HypervisorException e) {
            throw new MigrationException(step, "cannot start dirty tracking: " + e.getMessage(), e);
        }
        if (options.verify()) {
            // Tracking has started: every write from now on is in a later dirty log read, so a
            // region read from now on is marked again when the guest changes it.
            sourceRegions = new RegionDigests(memory.sizeBytes());
            sourceRegions.refreshInBackground(memory);
        }
        try {
            vm.deviceState().prepareSave(DeviceState.Scope.DEVICES, saveLimits());
        } catch (HypervisorException e) {
            throw new MigrationException(step, "cannot prepare the device-state save: " + e.getMessage(), e);
        }
        BandwidthMeter bandwidth = new BandwidthMeter(pageSize);
        List<Long> history = new ArrayList<>();
        long lastCollect = System.nanoTime();
        RoundResult result = sendRound(memory, 0, null, false);
        bandwidth.record(result);
        rounds = 1;
        while (true) {
            checkCancel();
            PageBitmap dirty = new PageBitmap(pageCount);
            try {
                dirtyLog.collect(dirty, true);
            } catch (HypervisorException e) {
                throw new MigrationException(step, "cannot read the dirty log: " + e.getMessage(), e);
            }
            markChanged(dirty, memory);
            if (sourceRegions != null) {
                sourceRegions.refreshInBackground(memory);
            }
            long now = System.nanoTime();
            long remaining = dirty.cardinality() * pageSize;
            double dirtyRate = remaining / Math.max(1e-9, (now - lastCollect) / 1e9);
            lastCollect = now;
            ConvergencePolicy.Decision decision = ConvergencePolicy.decide(
                    policy,
                    new ConvergencePolicy.Inputs(
                            rounds,
                            remaining,
                            bandwidth.bytesPerSecond(),
                            dirtyRate,
                            Duration.ofNanos(now - startNanos),
                            vm.switchoverCostEstimate(),
                            history));
            history.add(remaining);
            emitRound(result, remaining, dirtyRate, bandwidth.bytesPerSecond(), decision.expectedDowntime(), memory);
            switch (decision) {
                case ConvergencePolicy.Switchover s -> {
                    return new SwitchoverPlan(dirty, false, null);
                }
                case ConvergencePolicy.ForcedSwitchover f -> {
                    log.warn(
                            "migration {} of {}: forcing the switchover: {}",
                            parties.migrationId(),
                            parties.vmName(),
                            f.reason());
                    emit(MigrationPhase.MIGRATION_PHASE_ROUND, null, "forcing the switchover: " + f.reason());
                    return new SwitchoverPlan(dirty, true, f.reason());
                }
                case ConvergencePolicy.GiveUp g ->
                    throw new MigrationException(step, "did not converge: " + g.reason());
                case ConvergencePolicy.Continue c -> {
                    result = sendRound(memory, rounds, dirty, false);
                    bandwidth.record(result);
                    rounds++;
                }
            }
        }
    }

    /**
     * The console history as of the pause, for the destination to continue (bounded: at most
     * {@link dev.ferry.hypervisor.console.ConsoleHistory#MAX_TAIL_BYTES}, well inside a gRPC
     * message). Read in the pause, beside the final pages (docs/BENCHMARKS.md, "Console").
     */
    private java.util.Optional<dev.ferry.proto.migration.ConsoleTail> consoleTail() {
        return vm.console().flatMap(h -> {
            try {
                var t = h.tail(dev.ferry.hypervisor.console.ConsoleHistory.MAX_TAIL_BYTES);
                var b = dev.ferry.proto.migration.ConsoleTail.newBuilder()
                        .setGeneration(t.generation())
                        .setOffset(t.offset())
                        .setData(com.google.protobuf.ByteString.copyFrom(t.data()));
                for (var m : h.timesFrom(t.offset())) {
                    b.addTimes(dev.ferry.proto.migration.ConsoleTimeMark.newBuilder()
                            .setOffset(m.offset())
                            .setFirstUnixMs(m.firstMillis())
                            .setLastUnixMs(m.lastMillis()));
                }
                return java.util.Optional.of(b.build());
            } catch (java.io.IOException e) {
                log.warn("migration {}: the console history stays behind: {}", parties.migrationId(), e.getMessage());
                return java.util.Optional.empty();
            }
        });
    }

    private MigrationSummary switchover(GuestMemory memory, DirtyLog dirtyLog, SwitchoverPlan plan)
            throws MigrationException, InterruptedException {
        checkCancel();
        boolean precopy = options.mode() == TransferMode.TRANSFER_MODE_PRECOPY;
        if (precopy && sourceRegions != null) {
            // The last round's leaves hash now, while the guest runs: hashed in the pause they took
            // cores from the final pages (verified pauses were 51 vs 26 ms p50 on a loaded 2-core
            // host, with the pause's own re-read at 0-2 ms). What the guest writes meanwhile is in
            // the final dirty log, so it is re-read in the pause as before.
            long t = System.nanoTime();
            try {
                sourceRegions.awaitBackground();
            } catch (CompletionException e) {
                // Memory unreadable: the leaves are still marked, and the pause's re-read reports it.
            }
            log.info(
                    "migration {} of {}: RAM digests caught up before the pause in {} ms",
                    parties.migrationId(),
                    parties.vmName(),
                    (System.nanoTime() - t) / 1_000_000);
        }
        step = MigrationStep.MIGRATION_STEP_PAUSE;
        emit(MigrationPhase.MIGRATION_PHASE_SWITCHOVER, null, "pausing the VM");
        SenderLane control = lanes.get(0);
        long deviceBytes = 0;
        long pauseNanos;
        long finalPagesMs = 0;
        CompletableFuture<Long> sourceDigest = null;
        CompletableFuture<java.util.Optional<dev.ferry.proto.migration.ConsoleTail>> consoleTail = null;
        if (precopy) {
            DeviceState deviceState = vm.deviceState();
            // Device state is saved beside the final pages: both are downtime, so they overlap.
            CompletableFuture<Long> device = new CompletableFuture<>();
            if (deviceState.pausesForSave()) {
                // The hypervisor pauses the VM itself once its save is set up, so the set-up runs while
                // the guest still does. The final pages follow the device state (the pause is only
                // known once it is saved); the downtime starts when the hypervisor says it stopped.
                java.util.concurrent.atomic.AtomicReference<java.time.Instant> stoppedAt =
                        new java.util.concurrent.atomic.AtomicReference<>();
                long before = System.nanoTime();
                device.complete(saveDeviceState(
                        control,
                        MigrationStep.MIGRATION_STEP_PAUSE,
                        sink -> deviceState.saveAndPause(sink, saveLimits(), stoppedAt::set)));
                long now = System.nanoTime();
                long sinceStop = Duration.between(stoppedAt.get(), java.time.Instant.now())
                        .toNanos();
                pauseNanos = Math.max(before, Math.min(now, now - sinceStop));
            } else {
                pauseNanos = System.nanoTime();
                try {
                    vm.pause();
                } catch (HypervisorException e) {
                    throw new MigrationException(step, "cannot pause the VM: " + e.getMessage(), e);
                }
                startDeviceSave(
                        device,
                        () -> saveDeviceState(
                                control,
                                MigrationStep.MIGRATION_STEP_DEVICE_STATE,
                                sink -> deviceState.save(DeviceState.Scope.DEVICES, sink, saveLimits())));
            }
            long paused = System.nanoTime();
            // The commit's reads go beside the final pages and the device state: in the pause, the
            // commit is then one write (its version checks make stale reads safe).
            CommitRequest ahead = commitRequest();
            commitReadAhead = CompletableFuture.runAsync(() -> commit.prepare(ahead), COMMIT_READERS);
            step = MigrationStep.MIGRATION_STEP_FINAL_PAGES;
            PageBitmap last = plan.pending();
            SenderFaults f = faults;
            try {
                // The guest is paused: no re-protection needed, the log is not used again.
                // The digests learn of the final dirty pages as the log reports them, before
                // anything decides what to send: a page the sender then failed to send shows as a
                // difference at the destination.
                if (f == SenderFaults.NONE) {
                    dirtyLog.collect(last, false);
                    markChanged(last, memory);
                } else {
                    PageBitmap late = new PageBitmap(last.pageCount());
                    dirtyLog.collect(late, false);
                    f.finalDirtyLog(late);
                    markChanged(late, memory);
                    last.or(late);
                    f.finalPages(last, late);
                }
            } catch (HypervisorException e) {
                throw new MigrationException(step, "cannot read the dirty log: " + e.getMessage(), e);
            }
            log.info(
                    "migration {} of {}: paused in {} ms, final dirty log read in {} ms ({} pages)",
                    parties.migrationId(),
                    parties.vmName(),
                    (paused - pauseNanos) / 1_000_000,
                    (System.nanoTime() - paused) / 1_000_000,
                    last.cardinality());
            if (options.verify()) {
                sourceDigest = CompletableFuture.supplyAsync(() -> pauseDigest(memory));
            }
            // The guest prints nothing more now: its console's tail is read beside the final pages.
            consoleTail = CompletableFuture.supplyAsync(this::consoleTail);
            int finalRound = rounds;
            RoundResult r = sendRound(memory, finalRound, last, true);
            finalPagesMs = (System.nanoTime() - pauseNanos) / 1_000_000;
            step = MigrationStep.MIGRATION_STEP_DEVICE_STATE;
            deviceBytes = join(device);
            rounds++;
            // The paused round's own rate (the guest dirties nothing now, nothing more is expected):
            // a report's chart shows what the final pages went at, not a drop to zero.
            emitRound(r, 0, 0, BandwidthMeter.rateOf(r, memory.pageSize()), Duration.ZERO, memory);
        } else {
            // The hypervisor streams everything while the guest runs, and pauses it when done.
            step = MigrationStep.MIGRATION_STEP_DEVICE_STATE;
            emit(MigrationPhase.MIGRATION_PHASE_ROUND, null, "hypervisor-native transfer");
            deviceBytes = saveDeviceState(control, DeviceState.Scope.EVERYTHING);
            pauseNanos = System.nanoTime();
            rounds = 1;
        }
        step = MigrationStep.MIGRATION_STEP_VERIFY;
        Switchover.Builder sw =
                Switchover.newBuilder().setFinalRound(rounds - 1).setVerify(options.verify() && precopy);
        (consoleTail == null ? consoleTail() : join(consoleTail)).ifPresent(sw::setConsoleTail);
        control.send(SenderFrame.newBuilder().setSwitchover(sw).build(), step);
        Ready ready = control.await(
                control.ready,
                step,
                options.timeouts().ready().toNanos(),
                true,
                "the destination to apply the final state");
        long verifyMs = 0;
        boolean verified = false;
        if (sourceDigest != null) {
            long t = System.nanoTime();
            long digest = join(sourceDigest);
            verifyMs = ready.getVerifyMs() + (System.nanoTime() - t) / 1_000_000;
            if (digest != ready.getRamDigest()) {
                memoryMismatch = true;
                throw new MigrationException(
                        step,
                        String.format(
                                "destination RAM differs from the source at the pause point (digest %016x, source %016x)",
                                ready.getRamDigest(), digest));
            }
            verified = true;
        }
        long deviceStateMs = (System.nanoTime() - pauseNanos) / 1_000_000 - finalPagesMs;

        faults.beforeCommit(() -> lanes.forEach(SenderLane::cut));

        // The commit point. Past here, cancel is refused and the source never resumes unless the commit is known to
        // have failed.
        checkCancel();
        step = MigrationStep.MIGRATION_STEP_COMMIT;
        commitStarted = true;
        CommitRequest request = commitRequest();
        long commitStart = System.nanoTime();
        if (commitReadAhead != null) {
            // Not bounded here: the reads are single attempts on a client without retries, as the
            // commit's own would be, and the commit reads again whatever the read ahead missed.
            try {
                commitReadAhead.join();
            } catch (CompletionException e) {
                // prepare does not throw; nothing was read ahead, so the commit reads itself
            }
        }
        CommitOutcome outcome = commit.commit(request);
        switch (outcome) {
            case REJECTED -> {
                commitRejected = true;
                throw new MigrationException(
                        step,
                        "the ownership commit was rejected: "
                                + commit.whyRejected(request)
                                        .orElse(parties.vmName() + " is no longer owned by " + parties.sourceHost()
                                                + " at epoch " + parties.epoch()));
            }
            case UNKNOWN -> outcome = resolveOrStayPaused(request, "the ownership commit's outcome is unknown");
            case COMMITTED -> {}
        }
        if (outcome == CommitOutcome.REJECTED) {
            commitRejected = true;
            throw new MigrationException(step, "the ownership commit did not happen");
        }
        long commitMs = (System.nanoTime() - commitStart) / 1_000_000;
        emit(
                MigrationPhase.MIGRATION_PHASE_COMMITTED,
                null,
                "committed: " + parties.targetHost() + " owns " + parties.vmName() + " at epoch " + request.newEpoch());

        step = MigrationStep.MIGRATION_STEP_RESUME;
        long resumeStart = System.nanoTime();
        try {
            if (faults.deliverCommit()) {
                control.send(
                        SenderFrame.newBuilder()
                                .setCommit(Commit.newBuilder().setEpoch(request.newEpoch()))
                                .build(),
                        step);
            }
            control.await(
                    faults.hearResumed() ? control.resumed : new CompletableFuture<>(),
                    step,
                    options.timeouts().resumed().toNanos(),
                    false,
                    "the destination to resume");
        } catch (MigrationException e) {
            // The destination owns the VM now. If it cannot confirm, the outcome decides; never resume here.
            // Closing the lanes first lets a destination still waiting for the commit resolve it on its side.
            for (SenderLane lane : lanes) {
                lane.close();
            }
            CommitOutcome known =
                    resolveOrStayPaused(request, "the destination did not confirm the resume: " + e.reason());
            if (known == CommitOutcome.REJECTED) {
                commitStarted = false;
                throw new MigrationException(step, "the destination never took over: " + e.reason());
            }
            log.warn(
                    "migration {}: destination owns {} but did not confirm its resume: {}",
                    parties.migrationId(),
                    parties.vmName(),
                    e.reason());
        }
        long end = System.nanoTime();
        for (SenderLane lane : lanes) {
            lane.finish();
        }
        MigrationSummary summary = summary(MigrationPhase.MIGRATION_PHASE_COMPLETED, memory)
                .setDowntimeMs((end - pauseNanos) / 1_000_000)
                .setMemoryVerified(verified)
                .setVerifyMs(verifyMs)
                .setFinalPagesMs(finalPagesMs)
                .setDeviceStateMs(Math.max(0, deviceStateMs))
                .setCommitMs(commitMs)
                .setResumeMs((end - resumeStart) / 1_000_000)
                .setEpoch(request.newEpoch())
                .setForcedSwitchover(plan.forced())
                .setDeviceStateBytes(deviceBytes)
                .build();
        return summary;
    }

    /**
     * The commit's outcome is unknown: ask until it is known. While it is not, the VM stays paused
     * on both sides; giving up here leaves it paused with the reason, for the operator.
     */
    private CommitOutcome resolveOrStayPaused(CommitRequest request, String why)
            throws MigrationException, InterruptedException {
        CommitOutcome o = commit.resolve(
                request, OwnershipCommit.Side.SOURCE, options.timeouts().resolve());
        if (o == CommitOutcome.UNKNOWN) {
            throw new MigrationException(
                    MigrationStep.MIGRATION_STEP_COMMIT,
                    why + "; the VM stays paused on " + parties.sourceHost()
                            + " until the outcome is known, because running it here could run it twice");
        }
        return o;
    }

    private DeviceState.SaveLimits saveLimits() {
        return new DeviceState.SaveLimits(
                options.timeouts().ready(), options.policy().downtimeLimit(), options.maxBandwidth());
    }

    /** One way of saving device state into a sink (plain, or pausing the VM itself). */
    private interface DeviceSave {
        long save(DeviceState.Sink sink) throws HypervisorException;
    }

    private void startDeviceSave(CompletableFuture<Long> device, java.util.concurrent.Callable<Long> task) {
        deviceSave = device;
        Thread.ofPlatform().daemon().name("ferry-devstate-" + parties.vmName()).start(LogContext.inherit(() -> {
            try {
                device.complete(task.call());
            } catch (Throwable t) {
                device.completeExceptionally(t);
            }
        }));
    }

    private long saveDeviceState(SenderLane control, DeviceState.Scope scope)
            throws MigrationException, InterruptedException {
        return saveDeviceState(
                control,
                MigrationStep.MIGRATION_STEP_DEVICE_STATE,
                sink -> vm.deviceState().save(scope, sink, saveLimits()));
    }

    /**
     * @param devStep the step a failure is reported as: the pause, when the hypervisor pauses the
     *     VM as part of this save
     */
    private long saveDeviceState(SenderLane control, MigrationStep devStep, DeviceSave saver)
            throws MigrationException, InterruptedException {
        AtomicLong bytes = new AtomicLong();
        try {
            long n = saver.save(chunk -> {
                while (chunk.hasRemaining()) {
                    int len = Math.min(chunk.remaining(), 1 << 20);
                    ByteBuffer part = chunk.slice(chunk.position(), len);
                    chunk.position(chunk.position() + len);
                    try {
                        control.send(
                                SenderFrame.newBuilder()
                                        .setDeviceState(
                                                DeviceStateChunk.newBuilder().setData(ByteString.copyFrom(part)))
                                        .build(),
                                devStep);
                    } catch (MigrationException e) {
                        throw new java.io.IOException(e.getMessage(), e);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new java.io.InterruptedIOException("interrupted");
                    }
                    bytes.addAndGet(len);
                    wireBytes.addAndGet(len);
                }
            });
            control.send(
                    SenderFrame.newBuilder()
                            .setDeviceState(DeviceStateChunk.newBuilder().setLast(true))
                            .build(),
                    devStep);
            return n;
        } catch (HypervisorException e) {
            control.throwIfBroken(devStep);
            if (cancelRequested && !commitStarted) {
                throw MigrationException.cancelled(devStep);
            }
            throw new MigrationException(
                    devStep,
                    devStep == MigrationStep.MIGRATION_STEP_PAUSE
                            ? "cannot pause the VM for its device-state save: " + e.getMessage()
                            : "cannot save device state: " + e.getMessage(),
                    e);
        }
    }

    /** Per-round totals over all lanes. */
    /**
     * Per-round totals over all lanes. {@code dataNanos} is the time a lane spent, on average, on
     * batches that carried data pages (reading, encoding, and waiting for the stream): what sending
     * dirty pages costs, without the zero pages that make round 0 of a sparse guest fast or slow.
     */
    record RoundResult(
            int round,
            long pages,
            long dataPages,
            long zeroPages,
            long wireBytes,
            long nanos,
            long planned,
            long dataNanos) {}

    /** Sends one round on every lane in parallel; each lane takes the windows striped to it. */
    private RoundResult sendRound(GuestMemory memory, int round, PageBitmap selection, boolean isFinal)
            throws MigrationException, InterruptedException {
        long start = System.nanoTime();
        long planned = selection == null ? memory.pageCount() : selection.cardinality();
        long pagesAtStart = pagesSent.get();
        long wireAtStart = wireBytes.get();
        List<Future<long[]>> parts = new ArrayList<>();
        for (SenderLane lane : lanes) {
            parts.add(laneThreads.submit(() -> sendLaneRound(lane, memory, round, selection, isFinal)));
        }
        // Long rounds report as they go, so an operator watching a large guest sees it move.
        java.util.concurrent.ScheduledFuture<?> ticker = isFinal
                ? null
                : progressTicker.scheduleAtFixedRate(
                        () -> {
                            long pages = pagesSent.get() - pagesAtStart;
                            emit(
                                    MigrationPhase.MIGRATION_PHASE_ROUND,
                                    RoundProgress.newBuilder()
                                            .setRound(round)
                                            .setPartial(true)
                                            .setPagesPlanned(planned)
                                            .setPagesSent(pages)
                                            .setBytesSent(pages * memory.pageSize())
                                            .setWireBytes(wireBytes.get() - wireAtStart)
                                            .setTotalWireBytes(wireBytes.get())
                                            .setElapsedMs((System.nanoTime() - startNanos) / 1_000_000)
                                            .setRamBytes(memory.sizeBytes())
                                            .setRoundMs((System.nanoTime() - start) / 1_000_000)
                                            .build(),
                                    null);
                        },
                        250,
                        250,
                        java.util.concurrent.TimeUnit.MILLISECONDS);
        try {
            return collectRound(parts, round, start, planned);
        } finally {
            if (ticker != null) {
                ticker.cancel(false);
            }
        }
    }

    private RoundResult collectRound(List<Future<long[]>> parts, int round, long start, long planned)
            throws MigrationException, InterruptedException {
        long pages = 0;
        long data = 0;
        long zero = 0;
        long wire = 0;
        long dataNanos = 0;
        for (Future<long[]> f : parts) {
            long[] r = join(f);
            dataNanos += r[4];
            pages += r[0];
            data += r[1];
            zero += r[2];
            wire += r[3];
        }
        return new RoundResult(
                round, pages, data, zero, wire, System.nanoTime() - start, planned, dataNanos / lanes.size());
    }

    private long[] sendLaneRound(SenderLane lane, GuestMemory memory, int round, PageBitmap selection, boolean isFinal)
            throws MigrationException, InterruptedException {
        MigrationStep laneStep =
                isFinal ? MigrationStep.MIGRATION_STEP_FINAL_PAGES : MigrationStep.MIGRATION_STEP_PRECOPY;
        BatchCodec codec = codecs.computeIfAbsent(
                lane.index, i -> new BatchCodec(memory.pageSize(), MigrationStreamRpc.WINDOW_PAGES));
        long pageCount = memory.pageCount();
        BatchCodec.PageSource source = new BatchCodec.PageSource() {
            @Override
            public void read(long offset, java.lang.foreign.MemorySegment dst) throws java.io.IOException {
                memory.read(offset, dst);
            }

            @Override
            public long nextData(long offset) throws java.io.IOException {
                return memory.nextData(offset);
            }
        };
        long windows = (pageCount + MigrationStreamRpc.WINDOW_PAGES - 1) / MigrationStreamRpc.WINDOW_PAGES;
        long batches = 0;
        long pages = 0;
        long data = 0;
        long zero = 0;
        long wire = 0;
        long dataNanos = 0;
        for (long w = lane.index; w < windows; w += lanes.size()) {
            long base = w * MigrationStreamRpc.WINDOW_PAGES;
            if (selection != null) {
                long next = selection.nextSetBit(base);
                if (next < 0) {
                    break;
                }
                if (next >= base + MigrationStreamRpc.WINDOW_PAGES) {
                    continue;
                }
            }
            if (!isFinal && cancelRequested) {
                throw MigrationException.cancelled(laneStep);
            }
            long batchStart = System.nanoTime();
            BatchCodec.Encoded e;
            try {
                e = codec.encode(source, pageCount, base, selection, round);
            } catch (java.io.IOException io) {
                throw new MigrationException(laneStep, "cannot read guest memory: " + io.getMessage(), io);
            }
            if (e == null) {
                continue;
            }
            // The wait for the bandwidth cap is part of what a byte costs to send: under a cap below
            // what the CPU can compress, compressing pays, and the governor must see that.
            long sendStart = System.nanoTime();
            if (!isFinal) {
                // The cap protects the network while the guest runs; the final pages are downtime, and
                // QEMU does not rate-limit its final stage either.
                rateLimiter.acquire(e.wireBytes());
            }
            lane.send(SenderFrame.newBuilder().setPages(e.batch()).build(), laneStep);
            codec.recordSend(e.wireBytes(), System.nanoTime() - sendStart);
            if (e.dataPages() > 0) {
                dataNanos += System.nanoTime() - batchStart;
            }
            batches++;
            pages += e.pages();
            data += e.dataPages();
            zero += e.zeroPages();
            wire += e.wireBytes();
            wireBytes.addAndGet(e.wireBytes());
            pagesSent.addAndGet(e.pages());
        }
        lane.send(
                SenderFrame.newBuilder()
                        .setRoundEnd(RoundEnd.newBuilder()
                                .setRound(round)
                                .setBatches(batches)
                                .setPages(pages)
                                .setFinal(isFinal))
                        .build(),
                laneStep);
        return new long[] {pages, data, zero, wire, dataNanos};
    }

    private final java.util.concurrent.ConcurrentHashMap<Integer, BatchCodec> codecs =
            new java.util.concurrent.ConcurrentHashMap<>();

    /** With --verify: the pages a dirty log read named changed, so their regions are read again. */
    private void markChanged(PageBitmap logged, GuestMemory memory) {
        if (sourceRegions != null) {
            sourceRegions.markStale(logged, memory.pageSize());
        }
    }

    /**
     * The source's RAM digest at the pause: the regions the dirty logs named since they were last
     * read, plus a random sample the tracking calls unchanged, which must still match their
     * digests: if one does not, the tracking missed a write, the destination cannot have the
     * guest's memory, and the migration fails with the source keeping the VM.
     */
    private long pauseDigest(GuestMemory memory) {
        RegionDigests d = sourceRegions;
        if (d == null) {
            return RamDigest.of(memory);
        }
        long t = System.nanoTime();
        int reread = d.refresh(memory);
        long hashed = System.nanoTime();
        RegionDigests.Audit audit =
                d.audit(memory, java.util.concurrent.ThreadLocalRandom.current().nextLong(), AUDIT_LEAVES);
        log.info(
                "migration {} of {}: verify re-read {} of {} RAM leaves of {} KiB at the pause in {} ms, audited {} more in {} ms",
                parties.migrationId(),
                parties.vmName(),
                reread,
                d.leaves(),
                d.leafBytes() >> 10,
                (hashed - t) / 1_000_000,
                audit.sampled(),
                (System.nanoTime() - hashed) / 1_000_000);
        if (!audit.clean()) {
            throw new java.util.concurrent.CompletionException(new MigrationException(
                    MigrationStep.MIGRATION_STEP_VERIFY,
                    "the dirty tracking missed guest writes: RAM at offset(s) "
                            + audit.mismatchedOffsets().stream()
                                    .map(o -> "0x" + Long.toHexString(o))
                                    .toList()
                            + " (" + (d.leafBytes() >> 10) + " KiB each) changed without being logged, so the "
                            + "destination's copy cannot be trusted; " + parties.vmName() + " stays on "
                            + parties.sourceHost()));
        }
        return d.combined();
    }

    private <T> T join(Future<T> f) throws MigrationException, InterruptedException {
        try {
            return f.get();
        } catch (ExecutionException e) {
            Throwable c = e.getCause();
            while (c instanceof java.util.concurrent.CompletionException && c.getCause() != null) {
                c = c.getCause();
            }
            if (c instanceof MigrationException me) {
                throw me;
            }
            if (c instanceof InterruptedException ie) {
                throw ie;
            }
            throw new MigrationException(step, "internal error: " + c, c);
        }
    }

    private void checkCancel() throws MigrationException {
        if (cancelRequested && !commitStarted) {
            throw MigrationException.cancelled(step);
        }
    }

    /** Restores the source after a failure before (or a known-failed) commit, and tells the destination. */
    private void fail(MigrationException e, boolean maybePaused) {
        if (commitStarted && !commitRejected) {
            // The commit may have happened: the destination must learn the outcome from the commit, not
            // from an abort, so the lanes just close (in run's finally).
            log.warn("migration {} of {}: {}", parties.migrationId(), parties.vmName(), e.getMessage());
            return;
        }
        Abort abort = Abort.newBuilder()
                .setStep(e.step())
                .setReason(e.reason())
                .setCancelled(e.cancelled())
                .build();
        for (SenderLane lane : lanes) {
            lane.abort(abort);
        }
        if (maybePaused) {
            // Resume first: telling an unreachable destination to abandon may take until its call's
            // deadline, and the guest must not stay paused for that.
            awaitDeviceSaveEnd();
            resumeIfAllowed();
        }
        if (prepared) {
            preparer.abandon(parties.migrationId(), e.getMessage());
        }
        log.info(
                "migration {} of {} to {} {}: {}",
                parties.migrationId(),
                parties.vmName(),
                parties.targetHost(),
                e.cancelled() ? "cancelled" : "failed",
                e.getMessage());
    }

    /**
     * A device-state save still running when the migration failed (its lanes are closed now, so it
     * fails too) may still change the VM's run state, as a hypervisor that paused the VM for it
     * resumes the VM when its save is cancelled: resume only once it has ended.
     */
    private void awaitDeviceSaveEnd() {
        CompletableFuture<Long> d = deviceSave;
        if (d == null || d.isDone()) {
            return;
        }
        try {
            d.get(options.timeouts().ready().toNanos(), TimeUnit.NANOSECONDS);
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException | java.util.concurrent.TimeoutException ignored) {
            // failed as expected, or wedged: resume settles the VM's state either way
        }
    }

    private CommitRequest commitRequest() {
        return new CommitRequest(
                parties.vmName(), parties.migrationId(), parties.sourceHost(), parties.targetHost(), parties.epoch());
    }

    /** After a failure with the VM paused here: resume it if the commit says this host still owns it. */
    private void resumeIfAllowed() {
        CommitRequest request = commitRequest();
        boolean allowed;
        try {
            allowed = commit.sourceMayResume(
                    request, commitStarted, options.timeouts().resolve());
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            allowed = false;
        } catch (RuntimeException re) {
            log.error(
                    "migration {}: cannot learn whether {} may resume here: {}",
                    parties.migrationId(),
                    parties.vmName(),
                    re.toString());
            allowed = false;
        }
        if (!allowed) {
            log.warn(
                    "migration {}: {} stays paused on {}: this host may no longer own it",
                    parties.migrationId(),
                    parties.vmName(),
                    parties.sourceHost());
            return;
        }
        try {
            vm.resume();
        } catch (HypervisorException he) {
            log.error(
                    "migration {}: could not resume {} on the source after failure: {}",
                    parties.migrationId(),
                    parties.vmName(),
                    he.getMessage());
        }
    }

    public MigrationSummary.Builder summary(MigrationPhase status, GuestMemory memory) {
        return MigrationSummary.newBuilder()
                .setMigrationId(parties.migrationId())
                .setVm(parties.vmName())
                .setSource(parties.sourceHost())
                .setTarget(parties.targetHost())
                .setStatus(status)
                .setTotalMs((System.nanoTime() - startNanos) / 1_000_000)
                .setRounds(rounds)
                .setBytesTransferred(wireBytes.get())
                .setPagesSent(pagesSent.get())
                .setRamBytes(memory.sizeBytes())
                .setMode(options.mode());
    }

    /** Summary of a migration that ended in {@code e}. */
    public MigrationSummary failureSummary(MigrationException e) {
        return summary(
                        e.cancelled()
                                ? MigrationPhase.MIGRATION_PHASE_CANCELLED
                                : MigrationPhase.MIGRATION_PHASE_FAILED,
                        vm.memory())
                .setFailedStep(e.step())
                .setError(e.getMessage())
                .build();
    }

    private void emitRound(
            RoundResult r, long remaining, double dirtyRate, double bandwidth, Duration expected, GuestMemory memory) {
        RoundProgress p = RoundProgress.newBuilder()
                .setRound(r.round())
                .setPagesSent(r.pages())
                .setBytesSent(r.pages() * memory.pageSize())
                .setWireBytes(r.wireBytes())
                .setDirtyRateBytesPerSec((long) dirtyRate)
                .setRemainingBytes(remaining)
                .setBandwidthBytesPerSec((long) bandwidth)
                .setExpectedDowntimeMs(expected.toMillis())
                .setTotalWireBytes(wireBytes.get())
                .setElapsedMs((System.nanoTime() - startNanos) / 1_000_000)
                .setRamBytes(memory.sizeBytes())
                .setRoundMs(r.nanos() / 1_000_000)
                .setPagesPlanned(r.planned())
                .setMaxBandwidthLimitBytesPerSec(maxBandwidth)
                .setDowntimeLimitMs((int) policy.downtimeLimit().toMillis())
                .build();
        emit(MigrationPhase.MIGRATION_PHASE_ROUND, p, null);
    }

    private synchronized void emit(MigrationPhase phase, RoundProgress round, String message) {
        MigrationEvent.Builder e = MigrationEvent.newBuilder().setPhase(phase).setMigrationId(parties.migrationId());
        if (round != null) {
            e.setRound(round);
        }
        if (message != null) {
            e.setMessage(message);
        }
        emit(e.build());
    }

    private synchronized void emit(MigrationEvent e) {
        try {
            listener.onEvent(e);
        } catch (RuntimeException ex) {
            log.debug("progress listener failed: {}", ex.toString());
        }
    }

    /**
     * How fast dirty pages go out, in guest bytes per second: data bytes over the time lanes spent
     * on batches that carried data. Round 0 of a mostly-zero guest says little about that (its time
     * goes to skipping zeros), and a tiny round only measures how fast gRPC buffers, so a round
     * counts only with enough data, and rounds are averaged (EWMA) to follow a changing link.
     */
    static final class BandwidthMeter {
        private static final long MIN_DATA_BYTES = 256L << 10;
        private final int pageSize;
        private double bytesPerSecond;
        private double fallback;

        BandwidthMeter(int pageSize) {
            this.pageSize = pageSize;
        }

        void record(RoundResult r) {
            long dataBytes = r.dataPages() * pageSize;
            if (dataBytes >= MIN_DATA_BYTES && r.dataNanos() > 0) {
                double rate = dataBytes / (r.dataNanos() / 1e9);
                bytesPerSecond = bytesPerSecond == 0 ? rate : 0.5 * bytesPerSecond + 0.5 * rate;
            } else if (r.nanos() > 0) {
                fallback = Math.max(fallback, r.pages() * (double) pageSize / (r.nanos() / 1e9));
            }
        }

        double bytesPerSecond() {
            return bytesPerSecond > 0 ? bytesPerSecond : fallback;
        }

        /** One round's own rate, however small the round: its data over the time spent on data, else its pages over its time. */
        static double rateOf(RoundResult r, int pageSize) {
            if (r.dataPages() > 0 && r.dataNanos() > 0) {
                return r.dataPages() * (double) pageSize / (r.dataNanos() / 1e9);
            }
            return r.nanos() > 0 ? r.pages() * (double) pageSize / (r.nanos() / 1e9) : 0;
        }
    }
}
