package dev.ferry.migration.precopy;

import dev.ferry.migration.MigrationException;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.proto.migration.Abort;
import dev.ferry.proto.migration.HelloAck;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.Ready;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.Resumed;
import dev.ferry.proto.migration.SenderFrame;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ClientResponseObserver;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;
import java.util.function.BooleanSupplier;

/**
 * One lane of an outgoing migration: a Transfer call on its own channel. Frames are sent only
 * while gRPC says the stream is ready (its onReady handler wakes the sender), so whatever the
 * guest size, memory held in flight is bounded by the flow-control window.
 */
final class SenderLane implements AutoCloseable {
    final int index;
    private final ManagedChannel channel;
    private final BooleanSupplier cancelled;
    private final java.time.Duration stall;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition writable = lock.newCondition();
    private ClientCallStreamObserver<SenderFrame> out;
    private volatile LaneFailure failure;
    private boolean halfClosed;

    final CompletableFuture<HelloAck> helloAck = new CompletableFuture<>();
    final CompletableFuture<Ready> ready = new CompletableFuture<>();
    final CompletableFuture<Resumed> resumed = new CompletableFuture<>();

    /** What broke a lane: the destination's own Abort (with its step) or the transport. */
    record LaneFailure(MigrationStep remoteStep, String message, boolean remoteCancel) {}

    SenderLane(int index, ManagedChannel channel, BooleanSupplier cancelled, java.time.Duration stall) {
        this.index = index;
        this.channel = channel;
        this.cancelled = cancelled;
        this.stall = stall;
    }

    void open() {
        ClientCalls.asyncBidiStreamingCall(
                channel.newCall(MigrationStreamRpc.TRANSFER, CallOptions.DEFAULT),
                new ClientResponseObserver<SenderFrame, ReceiverFrame>() {
                    @Override
                    public void beforeStart(ClientCallStreamObserver<SenderFrame> requestStream) {
                        out = requestStream;
                        requestStream.setOnReadyHandler(SenderLane.this::signal);
                    }

                    @Override
                    public void onNext(ReceiverFrame frame) {
                        switch (frame.getBodyCase()) {
                            case HELLO_ACK -> helloAck.complete(frame.getHelloAck());
                            case READY -> ready.complete(frame.getReady());
                            case RESUMED -> resumed.complete(frame.getResumed());
                            case ABORT -> {
                                Abort a = frame.getAbort();
                                fail(new LaneFailure(
                                        a.getStep(), "destination aborted: " + a.getReason(), a.getCancelled()));
                            }
                            default ->
                                fail(new LaneFailure(
                                        null, "destination sent an unknown frame " + frame.getBodyCase(), false));
                        }
                    }

                    @Override
                    public void onError(Throwable t) {
                        Status s = Status.fromThrowable(t);
                        fail(new LaneFailure(
                                null,
                                "stream to the destination broke on lane " + index + ": " + s.getCode()
                                        + (s.getDescription() == null ? "" : " " + s.getDescription()),
                                false));
                    }

                    @Override
                    public void onCompleted() {
                        if (!resumed.isDone()) {
                            fail(new LaneFailure(null, "destination closed lane " + index + " early", false));
                        }
                    }
                });
    }

    private void signal() {
        lock.lock();
        try {
            writable.signalAll();
        } finally {
            lock.unlock();
        }
    }

    private void fail(LaneFailure f) {
        if (failure == null) {
            failure = f;
        }
        RuntimeException e = new IllegalStateException(f.message());
        helloAck.completeExceptionally(e);
        ready.completeExceptionally(e);
        resumed.completeExceptionally(e);
        signal();
    }

    LaneFailure failure() {
        return failure;
    }

    /**
     * Sends one frame once the stream can take it. A stream that takes nothing for the stall timeout
     * fails the step: a destination that stopped reading (or a connection that is not up yet, for
     * the hello) must not hold the source, perhaps paused, for longer.
     */
    void send(SenderFrame frame, MigrationStep step) throws MigrationException, InterruptedException {
        lock.lock();
        try {
            long deadline = System.nanoTime() + stall.toNanos();
            while (true) {
                throwIfBroken(step);
                if (cancelled.getAsBoolean()) {
                    throw MigrationException.cancelled(step);
                }
                if (out.isReady()) {
                    break;
                }
                if (System.nanoTime() - deadline >= 0) {
                    throw new MigrationException(
                            step,
                            "the destination took no data on lane " + index + " for "
                                    + MigrationException.describe(stall));
                }
                if (!writable.await(50, TimeUnit.MILLISECONDS)) {
                    continue; // not signalled: look at cancel and readiness again
                }
            }
            out.onNext(frame);
        } finally {
            lock.unlock();
        }
    }

    void throwIfBroken(MigrationStep step) throws MigrationException {
        LaneFailure f = failure;
        if (f != null) {
            throw new MigrationException(f.remoteStep() != null ? f.remoteStep() : step, f.message());
        }
    }

    /** Waits for a reply frame, failing on lane failure, cancel (if {@code cancellable}) or timeout. */
    <T> T await(CompletableFuture<T> reply, MigrationStep step, long timeoutNanos, boolean cancellable, String what)
            throws MigrationException, InterruptedException {
        long deadline = System.nanoTime() + timeoutNanos;
        while (true) {
            throwIfBroken(step);
            if (cancellable && cancelled.getAsBoolean()) {
                throw MigrationException.cancelled(step);
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new MigrationException(step, "timed out waiting for " + what + " from the destination");
            }
            try {
                return reply.get(Math.min(left, 50_000_000L), TimeUnit.NANOSECONDS);
            } catch (TimeoutException e) {
                // poll cancel and failure again
            } catch (ExecutionException e) {
                throwIfBroken(step);
                throw new MigrationException(step, e.getCause().getMessage());
            }
        }
    }

    /**
     * Best effort: tells the destination why, then ends the call. Never blocks on flow control. A
     * send still waiting on this lane (the device-state save, say) fails at once rather than at its
     * stall timeout: the source may be paused until it has.
     */
    void abort(Abort abort) {
        lock.lock();
        try {
            if (out != null && !halfClosed && failure == null) {
                out.onNext(SenderFrame.newBuilder().setAbort(abort).build());
                out.onCompleted();
                halfClosed = true;
            }
        } catch (RuntimeException e) {
            // The stream is already gone; the destination discards on its own.
        } finally {
            lock.unlock();
        }
        fail(new LaneFailure(null, "lane " + index + " aborted: " + abort.getReason(), false));
    }

    void finish() {
        lock.lock();
        try {
            if (out != null && !halfClosed) {
                out.onCompleted();
                halfClosed = true;
            }
        } catch (RuntimeException e) {
            // already closed by the peer
        } finally {
            lock.unlock();
        }
    }

    /** Ends the stream at once, without an Abort, and fails the lane (a fault a test injects). */
    void cut() {
        close();
        fail(new LaneFailure(null, "lane " + index + " was cut", false));
    }

    @Override
    public void close() {
        lock.lock();
        try {
            if (out != null && !halfClosed) {
                out.cancel("lane closed", null);
                halfClosed = true;
            }
        } catch (RuntimeException e) {
            // already closed
        } finally {
            lock.unlock();
        }
        channel.shutdownNow();
    }
}
