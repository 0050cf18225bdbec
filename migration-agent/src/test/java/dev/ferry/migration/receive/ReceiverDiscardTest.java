package dev.ferry.migration.receive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.ferry.hypervisor.DeviceState;
import dev.ferry.hypervisor.DirtyLog;
import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.InstanceState;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.migration.commit.CommitOutcome;
import dev.ferry.migration.commit.CommitRequest;
import dev.ferry.migration.commit.LocalOwnershipCommit;
import dev.ferry.migration.commit.OwnershipCommit;
import dev.ferry.migration.wire.BatchCodec;
import dev.ferry.migration.wire.HostileBatches;
import dev.ferry.proto.migration.Abort;
import dev.ferry.proto.migration.Commit;
import dev.ferry.proto.migration.Compression;
import dev.ferry.proto.migration.DeviceStateChunk;
import dev.ferry.proto.migration.Hello;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.PageRun;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.RoundEnd;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.proto.migration.Switchover;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.testing.Timing;
import io.grpc.stub.ServerCallStreamObserver;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * The receiver on its own, with a guest memory that records when it is written: what a lane does
 * while, or after, its migration is discarded, and what a lane may carry in each transfer mode.
 */
class ReceiverDiscardTest {
    private static final int PAGE = 4096;
    private static final int PAGES = 2 * MigrationStreamRpc.WINDOW_PAGES;
    private static final VmSpec SPEC = VmSpec.newBuilder()
            .setName("guest")
            .setMemoryBytes((long) PAGES * PAGE)
            .setVcpus(1)
            .build();

    /** Guest memory that notes every write made while, or after, the VM was closed. */
    static final class WatchedMemory implements GuestMemory {
        final byte[] bytes = new byte[PAGES * PAGE];
        final AtomicInteger writing = new AtomicInteger();
        final AtomicInteger writes = new AtomicInteger();
        final List<String> violations = new CopyOnWriteArrayList<>();
        volatile boolean closed;
        /** When set, the next write signals {@code entered} and waits for {@code release}. */
        volatile CountDownLatch entered;

        final CountDownLatch release = new CountDownLatch(1);

        @Override
        public long sizeBytes() {
            return bytes.length;
        }

        @Override
        public int pageSize() {
            return PAGE;
        }

        @Override
        public void read(long offset, MemorySegment dst) {
            MemorySegment.copy(MemorySegment.ofArray(bytes), offset, dst, 0, dst.byteSize());
        }

        @Override
        public void write(long offset, MemorySegment src) {
            writing.incrementAndGet();
            try {
                if (closed) {
                    violations.add("write at " + offset + " after the VM was closed");
                }
                CountDownLatch e = entered;
                if (e != null) {
                    entered = null;
                    e.countDown();
                    awaitRelease();
                }
                MemorySegment.copy(src, 0, MemorySegment.ofArray(bytes), offset, src.byteSize());
                writes.incrementAndGet();
            } finally {
                writing.decrementAndGet();
            }
        }

        private void awaitRelease() {
            try {
                if (!release.await(Timing.seconds(10).toMillis(), TimeUnit.MILLISECONDS)) {
                    violations.add("the blocked write was never released");
                }
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
            }
        }

        @Override
        public void discard(long firstPage, long pages) {
            if (closed) {
                violations.add("discard of page " + firstPage + " after the VM was closed");
            }
        }

        @Override
        public MemorySegment segment() {
            return MemorySegment.ofArray(bytes);
        }

        void close() {
            if (writing.get() > 0) {
                violations.add("the VM was closed while a write into it was running");
            }
            closed = true;
        }
    }

    /** A destination VM waiting for its state; closing it closes its memory. */
    static final class IncomingVm implements VmInstance {
        final WatchedMemory memory = new WatchedMemory();
        volatile boolean resumed;
        /** Called with the guest memory as each device-state chunk goes into the hypervisor's load. */
        volatile Consumer<WatchedMemory> onDeviceStateWrite = m -> {};

        @Override
        public VmSpec spec() {
            return SPEC;
        }

        @Override
        public InstanceState state() {
            return memory.closed ? InstanceState.CLOSED : InstanceState.INCOMING;
        }

        @Override
        public void start() {}

        @Override
        public void pause() {}

        @Override
        public void resume() {
            resumed = true;
        }

        @Override
        public void stop() {}

        @Override
        public GuestMemory memory() {
            return memory;
        }

        @Override
        public Optional<DirtyLog> dirtyLog() {
            return Optional.empty();
        }

        @Override
        public DeviceState deviceState() {
            return new DeviceState() {
                @Override
                public long save(Scope scope, Sink sink, SaveLimits limits) throws HypervisorException {
                    throw new HypervisorException("save device state", "a destination does not save");
                }

                @Override
                public Loader load(Scope scope) {
                    return new Loader() {
                        @Override
                        public void write(java.nio.ByteBuffer chunk) {
                            onDeviceStateWrite.accept(memory);
                            chunk.position(chunk.limit());
                        }

                        @Override
                        public void finish(Duration timeout) {}

                        @Override
                        public void close() {}
                    };
                }
            };
        }

        @Override
        public void onUnexpectedExit(Consumer<String> listener) {}

        @Override
        public void close() {
            memory.close();
        }
    }

    /** The server side of one lane's call: what the receiver sent back and asked for. */
    static final class Call extends ServerCallStreamObserver<ReceiverFrame> {
        final List<ReceiverFrame> sent = new CopyOnWriteArrayList<>();
        final AtomicInteger requested = new AtomicInteger();
        volatile Throwable error;

        @Override
        public boolean isCancelled() {
            return false;
        }

        @Override
        public void setOnCancelHandler(Runnable onCancelHandler) {}

        @Override
        public void setCompression(String compression) {}

        @Override
        public boolean isReady() {
            return true;
        }

        @Override
        public void setOnReadyHandler(Runnable onReadyHandler) {}

        @Override
        public void request(int count) {
            requested.addAndGet(count);
        }

        @Override
        public void setMessageCompression(boolean enable) {}

        @Override
        public void disableAutoInboundFlowControl() {}

        @Override
        public void onNext(ReceiverFrame value) {
            sent.add(value);
        }

        @Override
        public void onError(Throwable t) {
            error = t;
        }

        @Override
        public void onCompleted() {}
    }

    final IncomingVm vm = new IncomingVm();

    private IncomingMigration migration(TransferMode mode) {
        return migration(mode, new LocalOwnershipCommit((request, timeout) -> CommitOutcome.UNKNOWN));
    }

    IncomingMigration migration(TransferMode mode, OwnershipCommit commit) {
        return new IncomingMigration(
                new IncomingMigration.Expectation("m1", "host-b", SPEC, "host-a", mode, 1),
                "token",
                vm,
                commit,
                new IncomingMigration.Listener() {
                    @Override
                    public void committed(IncomingMigration migration, long epoch) {}

                    @Override
                    public void discarded(IncomingMigration migration, String reason) {}
                },
                new IncomingMigration.Deadlines(Timing.seconds(10), Timing.seconds(10), Timing.seconds(10)));
    }

    static ReceiverLane attach(IncomingMigration m, Call call, TransferMode mode) {
        ReceiverLane lane = new ReceiverLane(m, 0, 1, call);
        String refusal = m.attach(
                Hello.newBuilder()
                        .setProtocolVersion(MigrationStreamRpc.PROTOCOL_VERSION)
                        .setMigrationId("m1")
                        .setToken("token")
                        .setSpec(SPEC)
                        .setRamBytes((long) PAGES * PAGE)
                        .setPageSize(PAGE)
                        .setLane(0)
                        .setLaneCount(1)
                        .setSourceHost("host-a")
                        .setMode(mode)
                        .setWindowPages(MigrationStreamRpc.WINDOW_PAGES)
                        .build(),
                lane);
        assertNull(refusal);
        lane.start();
        return lane;
    }

    /** Window 0 of round 0 with random (incompressible, non-zero) pages: a batch that writes data. */
    private static SenderFrame dataBatch() throws Exception {
        byte[] guest = new byte[PAGES * PAGE];
        new Random(7).nextBytes(guest);
        MemorySegment src = MemorySegment.ofArray(guest);
        BatchCodec.Encoded e = new BatchCodec(PAGE, MigrationStreamRpc.WINDOW_PAGES)
                .encode((off, dst) -> MemorySegment.copy(src, off, dst, 0, dst.byteSize()), PAGES, 0, null, 0);
        return SenderFrame.newBuilder().setPages(e.batch()).build();
    }

    /**
     * The RAM file's descriptor is closed by the discard and its number may then belong to another
     * file (another guest's RAM): a batch applied after the discard wrote there.
     */
    @Test
    void aBatchArrivingAfterTheDiscardIsNotWrittenIntoTheClosedVm() throws Exception {
        IncomingMigration m = migration(TransferMode.TRANSFER_MODE_PRECOPY);
        ReceiverLane lane = attach(m, new Call(), TransferMode.TRANSFER_MODE_PRECOPY);
        m.discard("test", null);
        lane.onFrame(dataBatch());
        assertEquals(List.of(), vm.memory.violations);
        assertEquals(0, vm.memory.writes.get());
    }

    /** A discard (from another lane, a timer or the source) closed the VM under a lane's running write. */
    @Test
    void aBatchBeingWrittenWhenTheMigrationIsDiscardedEndsBeforeTheVmCloses() throws Exception {
        IncomingMigration m = migration(TransferMode.TRANSFER_MODE_PRECOPY);
        ReceiverLane lane = attach(m, new Call(), TransferMode.TRANSFER_MODE_PRECOPY);
        SenderFrame batch = dataBatch();
        CountDownLatch entered = new CountDownLatch(1);
        vm.memory.entered = entered;
        Thread writer = Thread.ofPlatform().start(() -> lane.onFrame(batch));
        assertTrue(entered.await(Timing.seconds(10).toMillis(), TimeUnit.MILLISECONDS), "the write started");
        Thread discarder = Thread.ofPlatform().start(() -> m.discard("test", null));
        Timing.await(
                "the discard closed the VM or waits for the write",
                Duration.ofSeconds(10),
                () -> vm.memory.closed || discarder.getState() == Thread.State.WAITING);
        vm.memory.release.countDown();
        writer.join(Timing.seconds(10).toMillis());
        discarder.join(Timing.seconds(10).toMillis());
        assertTrue(!writer.isAlive() && !discarder.isAlive(), "both ended");
        assertEquals(List.of(), vm.memory.violations);
        assertTrue(vm.memory.closed, "the discard closed the VM once the write had ended");
    }

    /** In the hypervisor's own migration the hypervisor moves RAM; pages on a lane would race with it. */
    @Test
    void pagesInAHypervisorNativeMigrationAreRefused() throws Exception {
        IncomingMigration m = migration(TransferMode.TRANSFER_MODE_HYPERVISOR_NATIVE);
        Call call = new Call();
        ReceiverLane lane = attach(m, call, TransferMode.TRANSFER_MODE_HYPERVISOR_NATIVE);
        lane.onFrame(dataBatch());
        assertEquals(0, vm.memory.writes.get());
        assertEquals(IncomingMigration.State.DISCARDED, m.state());
        ReceiverFrame abort = call.sent.getLast();
        assertEquals(MigrationStep.MIGRATION_STEP_PRECOPY, abort.getAbort().getStep());
        assertTrue(
                abort.getAbort().getReason().contains("HYPERVISOR_NATIVE"),
                abort.getAbort().getReason());
    }

    /**
     * The cluster's commit as the destination sees it: the source's commit may have landed already.
     * Records every resolve; answers {@code outcome}.
     */
    static final class ClusterCommit implements OwnershipCommit {
        final CommitOutcome outcome;
        final AtomicInteger resolves = new AtomicInteger();

        ClusterCommit(CommitOutcome outcome) {
            this.outcome = outcome;
        }

        @Override
        public CommitOutcome commit(CommitRequest request) {
            throw new AssertionError("a destination does not commit");
        }

        @Override
        public CommitOutcome confirm(CommitRequest request) {
            return outcome;
        }

        @Override
        public CommitOutcome resolve(CommitRequest request, Side side, Duration timeout) {
            assertEquals(Side.DESTINATION, side);
            resolves.incrementAndGet();
            return outcome;
        }
    }

    /** Drives a one-lane pre-copy migration to READY: its final round, device state, switchover. */
    private static void toReady(IncomingMigration m, ReceiverLane lane, Call call) {
        // Round 0 is the full copy: every window, whole (all zero here).
        for (long base = 0; base < PAGES; base += MigrationStreamRpc.WINDOW_PAGES) {
            lane.onFrame(SenderFrame.newBuilder()
                    .setPages(HostileBatches.seal(
                            PageBatch.newBuilder()
                                    .setBasePage(base)
                                    .setDataPages(ByteString.copyFrom(new byte[MigrationStreamRpc.WINDOW_PAGES / 8]))
                                    .addZeroRuns(PageRun.newBuilder().setCount(MigrationStreamRpc.WINDOW_PAGES))
                                    .setCompression(Compression.COMPRESSION_RAW),
                            PAGE,
                            MigrationStreamRpc.WINDOW_PAGES,
                            new byte[0]))
                    .build());
        }
        lane.onFrame(SenderFrame.newBuilder()
                .setRoundEnd(RoundEnd.newBuilder()
                        .setRound(0)
                        .setBatches(PAGES / MigrationStreamRpc.WINDOW_PAGES)
                        .setPages(PAGES)
                        .setFinal(true))
                .build());
        lane.onFrame(SenderFrame.newBuilder()
                .setDeviceState(DeviceStateChunk.newBuilder().setLast(true))
                .build());
        lane.onFrame(SenderFrame.newBuilder()
                .setSwitchover(Switchover.newBuilder().setFinalRound(0))
                .build());
        Timing.await(
                "the destination is ready",
                Duration.ofSeconds(10),
                () -> call.sent.stream().anyMatch(ReceiverFrame::hasReady));
        assertEquals(IncomingMigration.State.READY, m.state());
    }

    /**
     * Once Ready, the commit decides: the source's commit may have landed (in a cluster, before its
     * Commit frame arrives). A malformed Commit frame discarded the VM outright, and with the commit
     * made the VM was lost: the destination had thrown it away and the source, committed, never
     * resumes.
     */
    @Test
    void aMalformedCommitWhileReadyIsSettledByTheCommitNotByADiscard() throws Exception {
        ClusterCommit commit = new ClusterCommit(CommitOutcome.COMMITTED);
        IncomingMigration m = migration(TransferMode.TRANSFER_MODE_PRECOPY, commit);
        Call call = new Call();
        ReceiverLane lane = attach(m, call, TransferMode.TRANSFER_MODE_PRECOPY);
        toReady(m, lane, call);
        lane.onFrame(SenderFrame.newBuilder()
                .setCommit(Commit.newBuilder().setEpoch(99))
                .build());
        Timing.await("the commit settles it", Duration.ofSeconds(10), () -> m.state() != IncomingMigration.State.READY);
        assertEquals(IncomingMigration.State.COMMITTED, m.state(), m.discardReason());
        assertTrue(vm.resumed, "committed here: the VM runs here");
        assertTrue(!vm.memory.closed);
        assertEquals(1, commit.resolves.get());
    }

    /**
     * A stray frame while Ready (pages after the final round, here) discarded without asking the
     * commit; in a cluster that ask is what vetoes the migration, so that a commit the source tries
     * afterwards is refused rather than made for a destination that threw the VM away.
     */
    @Test
    void aStrayFrameWhileReadyAsksTheCommitBeforeDiscarding() throws Exception {
        ClusterCommit commit = new ClusterCommit(CommitOutcome.REJECTED);
        IncomingMigration m = migration(TransferMode.TRANSFER_MODE_PRECOPY, commit);
        Call call = new Call();
        ReceiverLane lane = attach(m, call, TransferMode.TRANSFER_MODE_PRECOPY);
        toReady(m, lane, call);
        lane.onFrame(dataBatch());
        Timing.await("discarded", Duration.ofSeconds(10), () -> m.state() == IncomingMigration.State.DISCARDED);
        assertEquals(1, commit.resolves.get(), "the commit was asked before the discard");
        assertEquals(0, vm.memory.writes.get());
        assertTrue(!vm.resumed);
    }

    /**
     * The source's own Abort while Ready went straight to a discard too; a source that (by a bug)
     * commits after its Abort would then lose the VM. The commit decides here as well.
     */
    @Test
    void anAbortWhileReadyAsksTheCommitBeforeDiscarding() throws Exception {
        ClusterCommit commit = new ClusterCommit(CommitOutcome.REJECTED);
        IncomingMigration m = migration(TransferMode.TRANSFER_MODE_PRECOPY, commit);
        Call call = new Call();
        ReceiverLane lane = attach(m, call, TransferMode.TRANSFER_MODE_PRECOPY);
        toReady(m, lane, call);
        lane.onFrame(SenderFrame.newBuilder()
                .setAbort(Abort.newBuilder()
                        .setStep(MigrationStep.MIGRATION_STEP_VERIFY)
                        .setReason("digests differ"))
                .build());
        Timing.await("discarded", Duration.ofSeconds(10), () -> m.state() == IncomingMigration.State.DISCARDED);
        assertEquals(1, commit.resolves.get(), "the commit was asked before the discard");
        assertTrue(m.discardReason().contains("digests differ"), m.discardReason());
    }
}
