package dev.ferry.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.rpc.testproto.EchoTest;
import dev.ferry.rpc.testproto.EchoTest.Ping;
import dev.ferry.rpc.testproto.EchoTest.Pong;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class GrpcServiceTest {
    private static final GrpcService ECHO = GrpcService.of(EchoTest.getDescriptor(), "Echo");

    private final Transport transport = Transport.plaintext();
    private Server server;
    private ManagedChannel channel;

    @BeforeEach
    void start() throws Exception {
        Endpoint endpoint = new Endpoint.InProcess("echo-" + UUID.randomUUID());
        server = transport.startServer(
                endpoint,
                Executors.newCachedThreadPool(),
                List.of(echoService()),
                AccessPolicy.builder()
                        .allowAll(ECHO, dev.ferry.pki.Role.OPERATOR)
                        .build());
        channel = transport.channel(endpoint, PeerRequirement.anyOf(dev.ferry.pki.Role.OPERATOR));
    }

    @AfterEach
    void stop() throws Exception {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }

    private static ServerServiceDefinition echoService() {
        return ECHO.bind()
                .unary("Once", Ping.class, Pong.class, (req, out) -> {
                    out.onNext(pong(req.getText(), 1));
                    out.onCompleted();
                })
                .serverStreaming("Fanout", Ping.class, Pong.class, (req, out) -> {
                    for (int i = 0; i < req.getRepeat(); i++) {
                        out.onNext(pong(req.getText() + i, i));
                    }
                    out.onCompleted();
                })
                .clientStreaming("Gather", Ping.class, Pong.class, out -> new StreamObserver<>() {
                    final StringBuilder all = new StringBuilder();
                    int count;

                    @Override
                    public void onNext(Ping value) {
                        all.append(value.getText());
                        count++;
                    }

                    @Override
                    public void onError(Throwable t) {}

                    @Override
                    public void onCompleted() {
                        out.onNext(pong(all.toString(), count));
                        out.onCompleted();
                    }
                })
                .bidiStreaming("Chat", Ping.class, Pong.class, out -> new StreamObserver<>() {
                    @Override
                    public void onNext(Ping value) {
                        out.onNext(pong("re:" + value.getText(), 0));
                    }

                    @Override
                    public void onError(Throwable t) {}

                    @Override
                    public void onCompleted() {
                        out.onCompleted();
                    }
                })
                .build();
    }

    private static Pong pong(String text, int count) {
        return Pong.newBuilder()
                .setText(text)
                .setDetail(Pong.Detail.newBuilder().setCount(count))
                .build();
    }

    @Test
    void unaryCallRoundTrips() {
        MethodDescriptor<Ping, Pong> once = ECHO.method("Once", Ping.class, Pong.class);
        assertEquals("ferry.test.v1.Echo/Once", once.getFullMethodName());
        assertEquals(MethodDescriptor.MethodType.UNARY, once.getType());
        Pong reply = ClientCalls.blockingUnaryCall(channel, once, io.grpc.CallOptions.DEFAULT, ping("hi"));
        assertEquals("hi", reply.getText());
        assertEquals(1, reply.getDetail().getCount());
    }

    @Test
    void serverStreamingDeliversEveryMessage() {
        MethodDescriptor<Ping, Pong> fanout = ECHO.method("Fanout", Ping.class, Pong.class);
        List<String> texts = new ArrayList<>();
        ClientCalls.blockingServerStreamingCall(
                        channel,
                        fanout,
                        io.grpc.CallOptions.DEFAULT,
                        Ping.newBuilder().setText("p").setRepeat(3).build())
                .forEachRemaining(p -> texts.add(p.getText()));
        assertEquals(List.of("p0", "p1", "p2"), texts);
    }

    @Test
    void clientAndBidiStreamingWork() throws Exception {
        MethodDescriptor<Ping, Pong> gather = ECHO.method("Gather", Ping.class, Pong.class);
        CompletableFuture<Pong> gathered = new CompletableFuture<>();
        StreamObserver<Ping> in = ClientCalls.asyncClientStreamingCall(
                channel.newCall(gather, io.grpc.CallOptions.DEFAULT), completing(gathered));
        in.onNext(ping("a"));
        in.onNext(ping("b"));
        in.onCompleted();
        assertEquals("ab", gathered.get(5, TimeUnit.SECONDS).getText());

        MethodDescriptor<Ping, Pong> chat = ECHO.method("Chat", Ping.class, Pong.class);
        assertEquals(MethodDescriptor.MethodType.BIDI_STREAMING, chat.getType());
        CompletableFuture<Pong> first = new CompletableFuture<>();
        StreamObserver<Ping> talk = ClientCalls.asyncBidiStreamingCall(
                channel.newCall(chat, io.grpc.CallOptions.DEFAULT), completing(first));
        talk.onNext(ping("x"));
        assertEquals("re:x", first.get(5, TimeUnit.SECONDS).getText());
        talk.onCompleted();
    }

    @Test
    void bindingRefusesMissingWrongKindAndWrongTypes() {
        IllegalStateException missing = assertThrows(
                IllegalStateException.class,
                () -> ECHO.bind()
                        .unary("Once", Ping.class, Pong.class, (r, o) -> {})
                        .build());
        assertTrue(missing.getMessage().contains("Fanout"), missing.getMessage());

        assertThrows(
                IllegalArgumentException.class, () -> ECHO.bind().unary("Chat", Ping.class, Pong.class, (r, o) -> {}));
        assertThrows(IllegalArgumentException.class, () -> ECHO.method("Once", Pong.class, Pong.class));
        assertThrows(IllegalArgumentException.class, () -> ECHO.method("Nope", Ping.class, Pong.class));
        assertThrows(IllegalArgumentException.class, () -> GrpcService.of(EchoTest.getDescriptor(), "Nope"));
    }

    @Test
    void nestedMessagesResolveToTheirGeneratedClass() {
        assertEquals(
                "dev.ferry.rpc.testproto.EchoTest$Pong$Detail",
                MessageTypes.javaClassName(Pong.Detail.getDescriptor()));
        assertEquals(Pong.Detail.getDefaultInstance(), MessageTypes.defaultInstance(Pong.Detail.getDescriptor()));
    }

    private static Ping ping(String text) {
        return Ping.newBuilder().setText(text).build();
    }

    private static StreamObserver<Pong> completing(CompletableFuture<Pong> f) {
        return new StreamObserver<>() {
            @Override
            public void onNext(Pong value) {
                f.complete(value);
            }

            @Override
            public void onError(Throwable t) {
                f.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {}
        };
    }
}
