package dev.ferry.migration.receive;

import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.migration.MigrationException;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.migration.wire.BatchCodec;
import dev.ferry.migration.wire.MalformedFrameException;
import dev.ferry.proto.migration.Abort;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.RoundEnd;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.proto.migration.TransferMode;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;

/**
 * One lane of an incoming migration. Frames are applied on the gRPC executor thread that
 * delivers them (never the transport's event loop), and the next frame is requested only once
 * this one is applied: memory in flight stays bounded by the flow-control window however fast
 * the source sends.
 *
 * <p>A lane's rounds come in order: round r's batches, then round r's RoundEnd, then round r + 1.
 * The lane keeps only the counts of the round it is in, so a sender cannot make it remember
 * anything else, and every window it carries is one striped to it (window w on lane w mod N): a
 * newer copy of a page can never overtake an older one on another lane.
 */
final class ReceiverLane {
    /** Frames requested ahead, so the network and the apply overlap. */
    private static final int PREFETCH = 2;

    private final IncomingMigration session;
    private final int index;
    private final int laneCount;
    private final ServerCallStreamObserver<ReceiverFrame> out;
    private final GuestMemory memory;
    private final BatchCodec.PageSink sink;
    /** Created once the lane is attached: its buffers are a window's worth, not spent on refused hellos. */
    private BatchCodec codec;

    /** Touched only by the thread applying this lane's frames (gRPC delivers them one at a time, in order). */
    private final Rounds rounds = new Rounds();

    /** Where this lane is in its rounds. */
    private static final class Rounds {
        /** The round this lane is in (a uint32 on the wire, kept unsigned). */
        long round;

        long batches;
        long pages;
        boolean finished;
        /** In round 0, the next window this lane must send: its windows in order, each whole. */
        long nextWindow;
    }

    private boolean closed;

    ReceiverLane(IncomingMigration session, int index, int laneCount, ServerCallStreamObserver<ReceiverFrame> out) {
        this.session = session;
        this.index = index;
        this.laneCount = laneCount;
        rounds.nextWindow = Integer.toUnsignedLong(index);
        this.out = out;
        this.memory = session.vm().memory();
        this.sink = new BatchCodec.PageSink() {
            @Override
            public void write(long firstPage, java.lang.foreign.MemorySegment pages) throws java.io.IOException {
                memory.write(firstPage * memory.pageSize(), pages);
                // After the write: a digest refresh that read the region before it reads it again.
                session.wrote(firstPage * memory.pageSize(), pages.byteSize());
            }

            @Override
            public void zero(long first, int count) throws java.io.IOException {
                memory.discard(first, count);
                session.wrote(first * memory.pageSize(), (long) count * memory.pageSize());
            }
        };
    }

    int index() {
        return index;
    }

    /** Called once the Hello is accepted. */
    void start() {
        codec = new BatchCodec(memory.pageSize(), MigrationStreamRpc.WINDOW_PAGES);
        out.request(PREFETCH);
    }

    void onFrame(SenderFrame frame) {
        session.frameArrived();
        try {
            apply(frame);
        } finally {
            session.frameApplied();
        }
    }

    private void apply(SenderFrame frame) {
        MigrationStep step =
                rounds.finished ? MigrationStep.MIGRATION_STEP_FINAL_PAGES : MigrationStep.MIGRATION_STEP_PRECOPY;
        try {
            switch (frame.getBodyCase()) {
                case PAGES -> {
                    if (rounds.finished) {
                        throw new MigrationException(step, "pages after the final round on lane " + index);
                    }
                    requirePrecopy(step, "pages");
                    if (!pages(frame.getPages(), step)) {
                        return; // discarded meanwhile: nothing more is asked for
                    }
                }
                case ROUND_END -> roundEnd(frame.getRoundEnd());
                case DEVICE_STATE -> {
                    step = MigrationStep.MIGRATION_STEP_DEVICE_STATE;
                    requireControlLane(step, "device state");
                    session.deviceState(
                            frame.getDeviceState().getData(),
                            frame.getDeviceState().getLast());
                }
                case SWITCHOVER -> {
                    step = MigrationStep.MIGRATION_STEP_FINAL_PAGES;
                    requireControlLane(step, "switchover");
                    session.switchover(frame.getSwitchover());
                }
                case COMMIT -> {
                    step = MigrationStep.MIGRATION_STEP_COMMIT;
                    requireControlLane(step, "commit");
                    session.commit(frame.getCommit());
                }
                case ABORT -> {
                    // Nothing more is requested: whatever the source sends after its Abort is never read.
                    session.sourceAborted(frame.getAbort());
                    return;
                }
                case HELLO ->
                    throw new MigrationException(
                            MigrationStep.MIGRATION_STEP_HANDSHAKE, "second hello on lane " + index);
                default ->
                    throw new MigrationException(step, "unknown frame " + frame.getBodyCase() + " on lane " + index);
            }
            out.request(1);
        } catch (MalformedFrameException e) {
            session.fail(new MigrationException(step, "malformed frame on lane " + index + ": " + e.getMessage()));
        } catch (java.io.IOException e) {
            session.fail(new MigrationException(
                    step, "cannot write guest memory on lane " + index + ": " + e.getMessage(), e));
        } catch (MigrationException e) {
            session.fail(e);
        } catch (RuntimeException e) {
            session.fail(new MigrationException(step, "internal error on lane " + index + ": " + e, e));
        }
    }

    /** Checks and applies one batch; false when the migration was discarded and nothing was written. */
    private boolean pages(PageBatch batch, MigrationStep step)
            throws MigrationException, MalformedFrameException, java.io.IOException {
        long batchRound = Integer.toUnsignedLong(batch.getRound());
        if (batchRound != rounds.round) {
            throw new MigrationException(
                    step, "lane " + index + " got a batch of round " + batchRound + " during round " + rounds.round);
        }
        long window = Long.divideUnsigned(batch.getBasePage(), MigrationStreamRpc.WINDOW_PAGES);
        long owner = Long.remainderUnsigned(window, laneCount);
        if (owner != index) {
            throw new MigrationException(
                    step,
                    "window " + Long.toUnsignedString(window) + " travels on lane " + owner + " of " + laneCount
                            + ", not on lane " + index);
        }
        // The first round is the full copy: only its batches tell the destination what every page holds.
        // Counts alone cannot show that a lane skipped or repeated a window (a sender whose lanes
        // disagree on their number, a window lost with its count), and memory never sent would be
        // taken for the guest's, so round 0 brings each of the lane's windows, in order, whole.
        // (A window past the end of guest memory is left to the codec, which names that.)
        if (rounds.round == 0
                && window != rounds.nextWindow
                && Long.compareUnsigned(batch.getBasePage(), memory.pageCount()) < 0) {
            throw new MigrationException(
                    step,
                    "lane " + index + " sent window " + Long.toUnsignedString(window) + " in round 0, expected window "
                            + rounds.nextWindow + ": the first round covers every window of its lane in order");
        }
        BatchCodec.Applied applied = session.writeIntoVm(() -> codec.decode(batch, memory.pageCount(), sink));
        if (applied == null) {
            return false;
        }
        if (rounds.round == 0) {
            // Decoded, so the window starts below the end of guest memory.
            long span = Math.min(
                    MigrationStreamRpc.WINDOW_PAGES, memory.pageCount() - window * MigrationStreamRpc.WINDOW_PAGES);
            if (applied.dataPages() + applied.zeroPages() != span) {
                throw new MigrationException(
                        step,
                        "window " + window + " in round 0 covers " + (applied.dataPages() + applied.zeroPages())
                                + " of its " + span + " pages: the first round sends every page");
            }
            rounds.nextWindow += laneCount;
        }
        rounds.batches++;
        rounds.pages += applied.dataPages() + applied.zeroPages();
        return true;
    }

    private void roundEnd(RoundEnd end) throws MigrationException {
        MigrationStep step = end.getFinal() || rounds.finished
                ? MigrationStep.MIGRATION_STEP_FINAL_PAGES
                : MigrationStep.MIGRATION_STEP_PRECOPY;
        requirePrecopy(step, "a round end");
        if (rounds.finished) {
            // Counted again, it would make the destination Ready before another lane's final pages arrived.
            throw new MigrationException(step, "lane " + index + " sent its final round end twice");
        }
        long round = rounds.round;
        long endRound = Integer.toUnsignedLong(end.getRound());
        if (endRound != round) {
            throw new MigrationException(step, "lane " + index + " ended round " + endRound + " during round " + round);
        }
        // uint64 counts compared bit for bit with what arrived (never negative): a count of 2^63 or
        // more cannot match by wrapping around.
        if (end.getBatches() != rounds.batches || end.getPages() != rounds.pages) {
            throw new MigrationException(
                    step,
                    "lane " + index + " round " + round + ": source sent " + Long.toUnsignedString(end.getBatches())
                            + " batches of " + Long.toUnsignedString(end.getPages()) + " pages, " + rounds.batches
                            + " of " + rounds.pages + " arrived");
        }
        long windows = (memory.pageCount() + MigrationStreamRpc.WINDOW_PAGES - 1) / MigrationStreamRpc.WINDOW_PAGES;
        if (round == 0 && rounds.nextWindow < windows) {
            throw new MigrationException(
                    step,
                    "lane " + index + " ended round 0 before its window " + rounds.nextWindow + " of " + windows
                            + ": the first round sends every page");
        }
        if (end.getFinal()) {
            rounds.finished = true;
            session.laneFinished(index, round);
            return;
        }
        rounds.round = round + 1;
        rounds.batches = 0;
        rounds.pages = 0;
        session.laneRoundEnded();
    }

    private void requireControlLane(MigrationStep step, String what) throws MigrationException {
        if (index != 0) {
            throw new MigrationException(step, what + " on lane " + index + "; only lane 0 carries it");
        }
    }

    /** Guest pages travel on lanes only in Ferry's pre-copy; in the hypervisor's own migration it moves RAM itself. */
    private void requirePrecopy(MigrationStep step, String what) throws MigrationException {
        if (session.mode() != TransferMode.TRANSFER_MODE_PRECOPY) {
            throw new MigrationException(step, what + " on lane " + index + " of a " + session.mode() + " migration");
        }
    }

    synchronized void send(ReceiverFrame frame) {
        if (closed) {
            return;
        }
        try {
            out.onNext(frame);
        } catch (RuntimeException e) {
            // The call is gone (cancelled by the source); the session notices through onError.
        }
    }

    /** Tells the source why (if given) and ends the call with an error status. */
    synchronized void abort(Abort why) {
        if (closed) {
            return;
        }
        closed = true;
        try {
            if (why != null) {
                out.onNext(ReceiverFrame.newBuilder().setAbort(why).build());
            }
            out.onError(Status.ABORTED
                    .withDescription(why == null ? "migration discarded" : why.getReason())
                    .asRuntimeException());
        } catch (RuntimeException e) {
            // already cancelled
        }
    }

    synchronized void complete() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            out.onCompleted();
        } catch (RuntimeException e) {
            // already cancelled
        }
    }
}
