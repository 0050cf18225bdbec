package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.proto.migration.Hello;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.testing.Timing;
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
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One lane of a hand-driven migration stream, for tests of what a hostile or buggy sender can do:
 * frames go out as bytes, so a test can send what no protobuf builder would (truncated, garbled,
 * oversized), and the receiver's answers and the call's end are kept for the test to look at.
 */
final class RawLane implements ClientResponseObserver<byte[], ReceiverFrame> {
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

    final LinkedBlockingQueue<ReceiverFrame> frames = new LinkedBlockingQueue<>();
    /** Completes when the receiver ends the call: with its error, or null when it completed it. */
    final CompletableFuture<Throwable> ended = new CompletableFuture<>();

    private final ClientCallStreamObserver<byte[]> out;
    private ClientCallStreamObserver<byte[]> requests;

    RawLane(Channel channel) {
        ClientCalls.asyncBidiStreamingCall(channel.newCall(TRANSFER_BYTES, CallOptions.DEFAULT), this);
        out = requests;
    }

    @Override
    public void beforeStart(ClientCallStreamObserver<byte[]> requestStream) {
        requests = requestStream;
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

    void send(SenderFrame.Builder frame) {
        send(frame.build());
    }

    void send(SenderFrame frame) {
        sendBytes(frame.toByteArray());
    }

    /** Sends {@code bytes} as one message, whether or not they parse as a frame. */
    void sendBytes(byte[] bytes) {
        out.onNext(bytes);
    }

    /** The sender is done with the lane (as a source that closes its side). */
    void halfClose() {
        out.onCompleted();
    }

    /** The sender resets the lane (as a source that dies mid-stream). */
    void cancel(String why) {
        out.cancel(why, null);
    }

    /** Says hello and expects the receiver's ack. */
    RawLane attach(Hello.Builder hello) throws InterruptedException {
        send(SenderFrame.newBuilder().setHello(hello));
        ReceiverFrame f = next();
        assertTrue(f.hasHelloAck(), "expected a hello ack, got " + f);
        return this;
    }

    /** The receiver's next answer; fails the test when none comes within ten (scaled) seconds. */
    ReceiverFrame next() throws InterruptedException {
        ReceiverFrame f = next(Timing.seconds(10));
        if (f == null) {
            throw new AssertionError("no answer from the receiver");
        }
        return f;
    }

    /** The receiver's next answer, or null when none comes within {@code wait}. */
    ReceiverFrame next(Duration wait) throws InterruptedException {
        return frames.poll(wait.toNanos(), TimeUnit.NANOSECONDS);
    }
}
