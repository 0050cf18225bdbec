package dev.ferry.migration.receive;

import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.migration.MigrationException;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.migration.wire.BatchCodec;
import dev.ferry.migration.wire.MalformedFrameException;
import dev.ferry.proto.migration.Abort;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.RoundEnd;
import dev.ferry.proto.migration.SenderFrame;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import java.util.HashMap;
import java.util.Map;

/**
 * One lane of an incoming migration. Frames are applied on the gRPC executor thread that
 * delivers them (never the transport's event loop), and the next frame is requested only once
 * this one is applied: memory in flight stays bounded by the flow-control window however fast
 * the source sends.
 */
final class ReceiverLane {
    /** Frames requested ahead, so the network and the apply overlap. */
    private static final int PREFETCH = 2;

    private final IncomingMigration session;
    private final int index;
    private final ServerCallStreamObserver<ReceiverFrame> out;
    private final BatchCodec codec;
    private final GuestMemory memory;
    private final BatchCodec.PageSink sink;
    private final Map<Integer, Long> batchesByRound = new HashMap<>();
    private boolean finished;
    private boolean closed;

    ReceiverLane(IncomingMigration session, int index, ServerCallStreamObserver<ReceiverFrame> out) {
        this.session = session;
        this.index = index;
        this.out = out;
        this.memory = session.vm().memory();
        this.codec = new BatchCodec(memory.pageSize(), MigrationStreamRpc.WINDOW_PAGES);
        this.sink = new BatchCodec.PageSink() {
            @Override
            public void write(long firstPage, java.lang.foreign.MemorySegment pages) throws java.io.IOException {
                memory.write(firstPage * memory.pageSize(), pages);
            }

            @Override
            public void zero(long first, int count) throws java.io.IOException {
                memory.discard(first, count);
            }
        };
    }

    /** Called once the Hello is accepted. */
    void start() {
        out.request(PREFETCH);
    }

    void onFrame(SenderFrame frame) {
        MigrationStep step = MigrationStep.MIGRATION_STEP_PRECOPY;
        try {
            switch (frame.getBodyCase()) {
                case PAGES -> {
                    step = finished ? MigrationStep.MIGRATION_STEP_FINAL_PAGES : MigrationStep.MIGRATION_STEP_PRECOPY;
                    if (finished) {
                        throw new MigrationException(step, "pages after the final round on lane " + index);
                    }
                    codec.decode(frame.getPages(), memory.pageCount(), sink);
                    batchesByRound.merge(frame.getPages().getRound(), 1L, Long::sum);
                }
                case ROUND_END -> {
                    RoundEnd end = frame.getRoundEnd();
                    long applied = batchesByRound.getOrDefault(end.getRound(), 0L);
                    if (applied != end.getBatches()) {
                        throw new MigrationException(
                                step,
                                "lane " + index + " round " + end.getRound() + ": source sent " + end.getBatches()
                                        + " batches, " + applied + " arrived");
                    }
                    batchesByRound.remove(end.getRound());
                    if (end.getFinal()) {
                        finished = true;
                        session.laneFinished();
                    }
                }
                case DEVICE_STATE -> {
                    step = MigrationStep.MIGRATION_STEP_DEVICE_STATE;
                    requireControlLane(step, "device state");
                    session.deviceState(
                            frame.getDeviceState().getData().asReadOnlyByteBuffer(),
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

    private void requireControlLane(MigrationStep step, String what) throws MigrationException {
        if (index != 0) {
            throw new MigrationException(step, what + " on lane " + index + "; only lane 0 carries it");
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
