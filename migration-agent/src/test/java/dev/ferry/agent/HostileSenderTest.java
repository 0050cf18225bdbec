package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.agent.PrepareIncomingResponse;
import dev.ferry.proto.migration.Compression;
import dev.ferry.proto.migration.Hello;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A sender that does not follow the protocol (a bug, a version skew, or an attacker on the
 * network) must get a refusal naming the step, and never leave half a VM behind.
 */
class HostileSenderTest {
    private AgentPair pair;
    private ManagedChannel channel;

    @BeforeEach
    void start() throws Exception {
        pair = new AgentPair();
        channel = Transport.plaintext().channel(pair.b.endpoint());
    }

    @AfterEach
    void stop() throws Exception {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        pair.close();
    }

    /** One lane's worth of conversation: what the receiver answered, and how the call ended. */
    private final class Lane implements StreamObserver<ReceiverFrame> {
        final LinkedBlockingQueue<ReceiverFrame> frames = new LinkedBlockingQueue<>();
        final CompletableFuture<Throwable> ended = new CompletableFuture<>();
        final StreamObserver<SenderFrame> out = ClientCalls.asyncBidiStreamingCall(
                channel.newCall(MigrationStreamRpc.TRANSFER, CallOptions.DEFAULT), this);

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

        ReceiverFrame next() throws InterruptedException {
            ReceiverFrame f = frames.poll(Timing.seconds(10).toMillis(), TimeUnit.MILLISECONDS);
            if (f == null) {
                throw new AssertionError("no answer from the receiver");
            }
            return f;
        }
    }

    private static VmSpec spec() {
        return AgentPair.busyGuest("victim", 16L << 20, 0);
    }

    private PrepareIncomingResponse prepare(String id) {
        return pair.clientB.prepareIncoming(PrepareIncomingRequest.newBuilder()
                .setMigrationId(id)
                .setSpec(spec())
                .setSourceHost("host-a")
                .setMode(TransferMode.TRANSFER_MODE_PRECOPY)
                .setEpoch(1)
                .build());
    }

    private static Hello.Builder hello(String id, String token) {
        return Hello.newBuilder()
                .setProtocolVersion(MigrationStreamRpc.PROTOCOL_VERSION)
                .setMigrationId(id)
                .setToken(token)
                .setSpec(spec())
                .setRamBytes(16L << 20)
                .setPageSize(4096)
                .setLane(0)
                .setLaneCount(1)
                .setSourceHost("host-a")
                .setMode(TransferMode.TRANSFER_MODE_PRECOPY)
                .setWindowPages(MigrationStreamRpc.WINDOW_PAGES);
    }

    private static void assertRefusal(ReceiverFrame f, MigrationStep step, String text) {
        assertTrue(f.hasAbort(), "expected a refusal, got " + f);
        assertEquals(step, f.getAbort().getStep());
        assertTrue(f.getAbort().getReason().contains(text), f.getAbort().getReason());
    }

    @Test
    void anUnexpectedMigrationIsRefused() throws Exception {
        Lane lane = new Lane();
        lane.out.onNext(
                SenderFrame.newBuilder().setHello(hello("never-prepared", "x")).build());
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "not expecting");
    }

    @Test
    void aFirstFrameThatIsNotAHelloIsRefused() throws Exception {
        Lane lane = new Lane();
        lane.out.onNext(SenderFrame.newBuilder()
                .setPages(PageBatch.getDefaultInstance())
                .build());
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "must be a hello");
    }

    @Test
    void aWrongTokenVersionSpecOrSizeIsRefusedAndTheRightSenderStillGetsIn() throws Exception {
        PrepareIncomingResponse p = prepare("m1");
        Lane badToken = new Lane();
        badToken.out.onNext(
                SenderFrame.newBuilder().setHello(hello("m1", "guess")).build());
        assertRefusal(badToken.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "wrong token");

        Lane future = new Lane();
        future.out.onNext(SenderFrame.newBuilder()
                .setHello(hello("m1", p.getToken()).setProtocolVersion(99))
                .build());
        assertRefusal(future.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "protocol version 99");

        Lane otherVm = new Lane();
        otherVm.out.onNext(SenderFrame.newBuilder()
                .setHello(hello("m1", p.getToken()).setSpec(spec().toBuilder().setMemoryBytes(32L << 20)))
                .build());
        assertRefusal(otherVm.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "spec differs");

        Lane good = new Lane();
        good.out.onNext(
                SenderFrame.newBuilder().setHello(hello("m1", p.getToken())).build());
        assertTrue(good.next().hasHelloAck(), "a refused impostor must not spoil the prepared migration");
        good.out.onCompleted();
        Timing.await(
                "destination discards after the source goes away",
                Duration.ofSeconds(10),
                () -> pair.clientB.listVms().isEmpty());
    }

    @Test
    void aMalformedBatchAbortsTheMigrationAndDiscardsTheDestination() throws Exception {
        PrepareIncomingResponse p = prepare("m2");
        Lane lane = new Lane();
        lane.out.onNext(
                SenderFrame.newBuilder().setHello(hello("m2", p.getToken())).build());
        assertTrue(lane.next().hasHelloAck());
        assertEquals(1, pair.ramFiles(pair.b));
        lane.out.onNext(SenderFrame.newBuilder()
                .setPages(PageBatch.newBuilder()
                        .setBasePage(0)
                        .setDataPages(ByteString.copyFrom(new byte[MigrationStreamRpc.WINDOW_PAGES / 8]))
                        .setCompression(Compression.COMPRESSION_LZ4)
                        .setRawLength(4096)
                        .setData(ByteString.copyFromUtf8("junk")))
                .build());
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_PRECOPY, "malformed frame");
        Timing.await("destination discards", Duration.ofSeconds(10), () -> {
            try {
                return pair.clientB.listVms().isEmpty() && pair.ramFiles(pair.b) == 0;
            } catch (Exception e) {
                return false;
            }
        });
    }

    @Test
    void pagesBeyondGuestMemoryAreRefused() throws Exception {
        PrepareIncomingResponse p = prepare("m3");
        Lane lane = new Lane();
        lane.out.onNext(
                SenderFrame.newBuilder().setHello(hello("m3", p.getToken())).build());
        assertTrue(lane.next().hasHelloAck());
        lane.out.onNext(SenderFrame.newBuilder()
                .setPages(PageBatch.newBuilder()
                        .setBasePage(1L << 40)
                        .setDataPages(ByteString.copyFrom(new byte[MigrationStreamRpc.WINDOW_PAGES / 8]))
                        .setCompression(Compression.COMPRESSION_RAW))
                .build());
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_PRECOPY, "not a window start below");
    }
}
