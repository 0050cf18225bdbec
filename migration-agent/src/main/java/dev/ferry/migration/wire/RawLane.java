package dev.ferry.migration.wire;

import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.proto.migration.Hello;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.RoundEnd;
import dev.ferry.proto.migration.SenderFrame;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.MethodDescriptor;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ClientResponseObserver;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.time.Duration;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One lane of a hand-driven migration stream, for what a hostile or buggy sender can do: frames go
 * out as bytes, so a caller can send what no protobuf builder would (truncated, garbled,
 * oversized), and the receiver's answers and the call's end are kept to look at. Main code, not a
 * test's: the agent's tests drive it in-process and the chaos suite's hostile source (a
 * compromised host's program) drives it across hosts over mutual TLS.
 */
public final class RawLane implements ClientResponseObserver<byte[], ReceiverFrame> {
    /** The migration stream's Transfer method with requests taken as they are, never re-encoded. */
    static final MethodDescriptor<byte[], ReceiverFrame> TRANSFER_BYTES = MigrationStreamRpc.TRANSFER.toBuilder(
                    new MethodDescriptor.Marshaller<byte[]>() {
                        @Override
                        public InputStream stream(byte[] value) {
                            return new ByteArrayInputStream(value);
                        }

                        @Override
                        public byte[] parse(InputStream stream) {
                            try {
                                return stream.readAllBytes();
                            } catch (IOException e) {
                                throw new UncheckedIOException(e);
                            }
                        }
                    },
                    MigrationStreamRpc.TRANSFER.getResponseMarshaller())
            .build();

    private final LinkedBlockingQueue<ReceiverFrame> frames = new LinkedBlockingQueue<>();
    /** Completes when the receiver ends the call: with its error, or null when it completed it. */
    private final CompletableFuture<Throwable> ended = new CompletableFuture<>();

    private final Duration answerWait;
    /** The call's request side, handed over by gRPC in {@link #beforeStart} while the constructor starts the call. */
    private ClientCallStreamObserver<byte[]> out;

    /**
     * Opens the call on {@code channel}; {@link #next()} and {@link #attach} wait up to
     * {@code answerWait} for each answer of the receiver.
     */
    public RawLane(Channel channel, Duration answerWait) {
        this.answerWait = answerWait;
        ClientCalls.asyncBidiStreamingCall(channel.newCall(TRANSFER_BYTES, CallOptions.DEFAULT), this);
    }

    @Override
    public void beforeStart(ClientCallStreamObserver<byte[]> requestStream) {
        out = requestStream;
    }

    @Override
    public void onNext(ReceiverFrame value) {
        frames.add(value);
    }

    @Override
    public void onError(Throwable t) {
        ended.complete(t);
    }

    @Override
    public void onCompleted() {
        ended.complete(null);
    }

    /** The receiver's answers not taken by {@link #next} yet. */
    public BlockingQueue<ReceiverFrame> frames() {
        return frames;
    }

    /** Completes when the receiver ends the call: with its error, or null when it completed it. */
    public CompletableFuture<Throwable> ended() {
        return ended;
    }

    public void send(SenderFrame.Builder frame) {
        send(frame.build());
    }

    public void send(SenderFrame frame) {
        sendBytes(frame.toByteArray());
    }

    /** Sends {@code bytes} as one message, whether or not they parse as a frame. */
    public void sendBytes(byte[] bytes) {
        out.onNext(bytes);
    }

    /** The sender is done with the lane (as a source that closes its side). */
    public void halfClose() {
        out.onCompleted();
    }

    /** The sender resets the lane (as a source that dies mid-stream). */
    public void cancel(String why) {
        out.cancel(why, null);
    }

    /** Says hello and expects the receiver's ack. */
    public RawLane attach(Hello.Builder hello) throws InterruptedException {
        send(SenderFrame.newBuilder().setHello(hello));
        ReceiverFrame f = next();
        if (!f.hasHelloAck()) {
            throw new IllegalStateException("expected a hello ack, got " + f);
        }
        return this;
    }

    /**
     * Round 0 of lane {@code index} of {@code count} for a guest of {@code pageCount} pages, as the
     * full copy sends it (every window of the lane, in order, whole: all zero pages here), then its
     * RoundEnd, {@code last} when it is the lane's final round; returns that RoundEnd.
     */
    public RoundEnd sendZeroFirstRound(long pageCount, int pageSize, int index, int count, boolean last) {
        int windowPages = MigrationStreamRpc.WINDOW_PAGES;
        long windows = (pageCount + windowPages - 1) / windowPages;
        long batches = 0;
        long pages = 0;
        for (long w = index; w < windows; w += count) {
            int span = (int) Math.min(windowPages, pageCount - w * windowPages);
            send(SenderFrame.newBuilder().setPages(HostileBatches.zeroWindow(w, 0, span, pageSize, windowPages)));
            batches++;
            pages += span;
        }
        RoundEnd end = RoundEnd.newBuilder()
                .setRound(0)
                .setBatches(batches)
                .setPages(pages)
                .setFinal(last)
                .build();
        send(SenderFrame.newBuilder().setRoundEnd(end));
        return end;
    }

    /** The receiver's next answer; fails when none comes within the lane's answer wait. */
    public ReceiverFrame next() throws InterruptedException {
        ReceiverFrame f = next(answerWait);
        if (f == null) {
            throw new IllegalStateException("no answer from the receiver within " + answerWait);
        }
        return f;
    }

    /** The receiver's next answer, or null when none comes within {@code wait}. */
    public ReceiverFrame next(Duration wait) throws InterruptedException {
        return frames.poll(wait.toNanos(), TimeUnit.NANOSECONDS);
    }
}
