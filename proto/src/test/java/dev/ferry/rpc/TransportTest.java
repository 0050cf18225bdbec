package dev.ferry.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.rpc.testproto.EchoTest;
import dev.ferry.rpc.testproto.EchoTest.Ping;
import dev.ferry.rpc.testproto.EchoTest.Pong;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class TransportTest {
    @Test
    void keepaliveDefaultsNoticeADeadPeerInSecondsAndAllowOurClientsPings() {
        Transport.Keepalive k = Transport.plaintext().keepalive();
        assertEquals(Transport.Keepalive.DEFAULT, k);
        // gRPC never lets a client ping more often than every 10 s; the server must permit at least that.
        assertTrue(Transport.PERMIT_KEEPALIVE_TIME.compareTo(Duration.ofSeconds(10)) <= 0);
        assertTrue(k.time().plus(k.timeout()).compareTo(Duration.ofSeconds(30)) <= 0, k.toString());
        assertTrue(k.timeout().compareTo(Duration.ofSeconds(1)) >= 0, "a real network needs seconds: " + k);
    }

    @Test
    void keepaliveMustBePositive() {
        assertThrows(
                IllegalArgumentException.class, () -> new Transport.Keepalive(Duration.ZERO, Duration.ofSeconds(1)));
        assertThrows(
                IllegalArgumentException.class,
                () -> new Transport.Keepalive(Duration.ofSeconds(1), Duration.ofSeconds(-1)));
    }

    @Test
    void keepaliveSurvivesAddingAnInterceptor() {
        Transport.Keepalive k = new Transport.Keepalive(Duration.ofSeconds(15), Duration.ofSeconds(3));
        Transport t = Transport.plaintext().withKeepalive(k).withClientInterceptor(new ClientInterceptor() {
            @Override
            public <Q, R> ClientCall<Q, R> interceptCall(
                    MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
                return next.newCall(method, options);
            }
        });
        assertEquals(k, t.keepalive());
    }

    @Test
    void oneConnectionCannotHoldMoreThanItsShareOfCalls() throws Exception {
        // A peer opening call after call (and never finishing them) holds at most
        // MAX_CALLS_PER_CONNECTION handlers at the server; the rest wait on its side.
        GrpcService echo = GrpcService.of(EchoTest.getDescriptor(), "Echo");
        AtomicInteger open = new AtomicInteger();
        AtomicInteger started = new AtomicInteger();
        StreamObserver<Ping> ignore = new StreamObserver<>() {
            @Override
            public void onNext(Ping value) {}

            @Override
            public void onError(Throwable t) {
                open.decrementAndGet();
            }

            @Override
            public void onCompleted() {}
        };
        var service = echo.bind()
                .unary("Once", Ping.class, Pong.class, (req, out) -> {
                    out.onNext(Pong.getDefaultInstance());
                    out.onCompleted();
                })
                .serverStreaming("Fanout", Ping.class, Pong.class, (req, out) -> out.onCompleted())
                .clientStreaming("Gather", Ping.class, Pong.class, out -> ignore)
                .bidiStreaming("Chat", Ping.class, Pong.class, out -> {
                    open.incrementAndGet();
                    started.incrementAndGet();
                    return ignore;
                })
                .build();
        Transport t = Transport.plaintext();
        Server server = t.startServer(
                new Endpoint.Tcp("127.0.0.1", 0),
                Executors.newCachedThreadPool(),
                List.of(service),
                AccessPolicy.builder()
                        .allowAll(echo, dev.ferry.pki.Role.OPERATOR)
                        .build());
        ManagedChannel ch = t.channel(
                Transport.boundEndpoint(new Endpoint.Tcp("127.0.0.1", 0), server), PeerRequirement.anyCoordinator());
        try {
            int limit = Transport.MAX_CALLS_PER_CONNECTION;
            List<ClientCall<Ping, Pong>> calls = new ArrayList<>();
            for (int i = 0; i < limit + 10; i++) {
                ClientCall<Ping, Pong> c = ch.newCall(echo.method("Chat", Ping.class, Pong.class), CallOptions.DEFAULT);
                ClientCalls.asyncBidiStreamingCall(c, new StreamObserver<Pong>() {
                    @Override
                    public void onNext(Pong value) {}

                    @Override
                    public void onError(Throwable t) {}

                    @Override
                    public void onCompleted() {}
                });
                calls.add(c);
            }
            waitFor(() -> started.get() >= limit);
            Thread.sleep(500);
            assertEquals(limit, started.get(), "calls beyond the limit wait at the client");
            // One ends: exactly one waiting call gets its place.
            calls.get(0).cancel("done", null);
            waitFor(() -> started.get() == limit + 1);
            Thread.sleep(200);
            assertEquals(limit + 1, started.get());
            assertTrue(open.get() <= limit, open.get() + " open");
            for (ClientCall<Ping, Pong> c : calls) {
                c.cancel("done", null);
            }
        } finally {
            ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    private static void waitFor(java.util.function.BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!condition.getAsBoolean()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting");
            Thread.sleep(20);
        }
    }
}
