package dev.ferry.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.ferry.pki.CertificateAuthority;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.Role;
import dev.ferry.rpc.testproto.EchoTest;
import dev.ferry.rpc.testproto.EchoTest.Ping;
import dev.ferry.rpc.testproto.EchoTest.Pong;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The standard health service as a daemon serves it, over real gRPC on TCP: plaintext and mutual
 * TLS, asked with grpc-java's own Health stub as any health checker would.
 */
class ServingHealthTest {
    private static final GrpcService ECHO = GrpcService.of(EchoTest.getDescriptor(), "Echo");
    private static final Clock CLOCK = Clock.systemUTC();

    @TempDir
    static Path dir;

    static Credentials server;
    static Map4 clients;

    /** One certificate per role that may ask, and one that may not. */
    record Map4(Credentials agent, Credentials coordinator, Credentials operator, Credentials viewer, Credentials zk) {}

    private final List<AutoCloseable> closing = new ArrayList<>();
    private final ExecutorService executor = Executors.newCachedThreadPool();

    @BeforeAll
    static void issue() {
        CertificateAuthority ca = CertificateAuthority.create(dir.resolve("ca"), "prod", Duration.ofDays(30), CLOCK);
        server = issue(ca, "host-1", Role.AGENT);
        clients = new Map4(
                issue(ca, "host-2", Role.AGENT),
                issue(ca, "coord-1", Role.COORDINATOR),
                issue(ca, "alice", Role.OPERATOR),
                issue(ca, "bob", Role.VIEWER),
                issue(ca, "zk-1", Role.ZOOKEEPER));
    }

    private static Credentials issue(CertificateAuthority ca, String name, Role role) {
        Credentials c = ca.issue(name, role, Duration.ofDays(1), List.of(), List.of(), dir.resolve(name), CLOCK);
        return Credentials.load(c.certificate(), c.key(), c.ca(), CLOCK);
    }

    @AfterEach
    void close() throws Exception {
        for (AutoCloseable c : closing.reversed()) {
            c.close();
        }
        executor.shutdownNow();
    }

    private static ServerServiceDefinition echo() {
        return ECHO.bind()
                .unary("Once", Ping.class, Pong.class, (req, out) -> {
                    out.onNext(Pong.getDefaultInstance());
                    out.onCompleted();
                })
                .serverStreaming("Fanout", Ping.class, Pong.class, (req, out) -> out.onCompleted())
                .clientStreaming("Gather", Ping.class, Pong.class, out -> null)
                .bidiStreaming("Chat", Ping.class, Pong.class, out -> null)
                .build();
    }

    private record Served(Server server, Endpoint endpoint, ServingHealth health, ServerServiceDefinition echo) {}

    private Served serve(Transport t) throws Exception {
        ServingHealth health = new ServingHealth();
        ServerServiceDefinition echo = echo();
        AccessPolicy policy = ServingHealth.allowEveryRole(
                        AccessPolicy.builder().allowAll(ECHO, Role.OPERATOR))
                .build();
        Server s =
                t.startServer(new Endpoint.Tcp("127.0.0.1", 0), executor, List.of(echo, health.definition()), policy);
        closing.add(() -> s.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        return new Served(s, Transport.boundEndpoint(new Endpoint.Tcp("127.0.0.1", 0), s), health, echo);
    }

    private HealthGrpc.HealthBlockingStub stub(Transport client, Endpoint to) {
        ManagedChannel ch = client.channel(to, PeerRequirement.agent("host-1"));
        closing.add(() -> ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        return HealthGrpc.newBlockingStub(ch).withDeadlineAfter(20, TimeUnit.SECONDS);
    }

    private static ServingStatus check(HealthGrpc.HealthBlockingStub stub, String service) {
        return stub.withDeadlineAfter(20, TimeUnit.SECONDS)
                .check(HealthCheckRequest.newBuilder().setService(service).build())
                .getStatus();
    }

    @Test
    void plaintextServingOnceReadyNotServingWhileShuttingDownUnavailableOnceStopped() throws Exception {
        Served s = serve(Transport.plaintext());
        HealthGrpc.HealthBlockingStub stub = stub(Transport.plaintext(), s.endpoint());
        String echoName = s.echo().getServiceDescriptor().getName();

        assertEquals(ServingStatus.NOT_SERVING, check(stub, ""), "not ready yet");
        s.health().serving(List.of(s.echo(), s.health().definition()));
        assertEquals(ServingStatus.SERVING, check(stub, ""));
        assertEquals(ServingStatus.SERVING, check(stub, echoName));
        StatusRuntimeException unknown =
                assertThrows(StatusRuntimeException.class, () -> check(stub, "no.such.Service"));
        assertEquals(Status.Code.NOT_FOUND, unknown.getStatus().getCode());

        // A watcher hears the change when the daemon starts shutting down, before its server stops.
        BlockingQueue<Object> seen = new LinkedBlockingQueue<>();
        ManagedChannel ch = Transport.plaintext().channel(s.endpoint(), PeerRequirement.agent("host-1"));
        closing.add(() -> ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        HealthGrpc.newStub(ch)
                .watch(HealthCheckRequest.newBuilder().setService(echoName).build(), new StreamObserver<>() {
                    @Override
                    public void onNext(HealthCheckResponse r) {
                        seen.add(r.getStatus());
                    }

                    @Override
                    public void onError(Throwable t) {
                        seen.add(Status.fromThrowable(t).getCode());
                    }

                    @Override
                    public void onCompleted() {
                        seen.add("completed");
                    }
                });
        assertEquals(ServingStatus.SERVING, seen.poll(20, TimeUnit.SECONDS));
        s.health().shuttingDown();
        assertEquals(ServingStatus.NOT_SERVING, seen.poll(20, TimeUnit.SECONDS));
        // Then the watch ends, so that it does not hold the server's shutdown.
        assertEquals(Status.Code.UNAVAILABLE, seen.poll(20, TimeUnit.SECONDS));
        assertEquals(ServingStatus.NOT_SERVING, check(stub, ""));
        assertEquals(ServingStatus.NOT_SERVING, check(stub, echoName));
        s.health().serving(List.of(s.echo())); // too late: shutting down is for good
        assertEquals(ServingStatus.NOT_SERVING, check(stub, ""));

        s.server().shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        StatusRuntimeException gone = assertThrows(StatusRuntimeException.class, () -> check(stub, ""));
        assertEquals(Status.Code.UNAVAILABLE, gone.getStatus().getCode());
    }

    @Test
    void overMutualTlsEveryRoleOfTheClusterMayAskAndNothingElse() throws Exception {
        Served s = serve(Transport.mutualTls(server));
        s.health().serving(List.of(s.echo()));
        for (Credentials c : List.of(clients.agent(), clients.coordinator(), clients.operator(), clients.viewer())) {
            HealthGrpc.HealthBlockingStub stub = stub(Transport.mutualTls(c), s.endpoint());
            assertEquals(ServingStatus.SERVING, check(stub, ""), c.identity().toString());
            assertEquals(
                    ServingStatus.SERVING,
                    check(stub, s.echo().getServiceDescriptor().getName()),
                    c.identity().toString());
        }
        // A ZooKeeper server's certificate is granted nothing in Ferry's API, health included.
        StatusRuntimeException denied = assertThrows(
                StatusRuntimeException.class, () -> check(stub(Transport.mutualTls(clients.zk()), s.endpoint()), ""));
        assertEquals(Status.Code.PERMISSION_DENIED, denied.getStatus().getCode());
        // The health service does not open the daemon's own methods: a viewer still may not echo.
        StatusRuntimeException echoDenied = assertThrows(StatusRuntimeException.class, () -> {
            ManagedChannel ch =
                    Transport.mutualTls(clients.viewer()).channel(s.endpoint(), PeerRequirement.agent("host-1"));
            closing.add(() -> ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
            io.grpc.stub.ClientCalls.blockingUnaryCall(
                    ch,
                    ECHO.method("Once", Ping.class, Pong.class),
                    io.grpc.CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS),
                    Ping.getDefaultInstance());
        });
        assertEquals(Status.Code.PERMISSION_DENIED, echoDenied.getStatus().getCode());

        s.health().shuttingDown();
        assertEquals(ServingStatus.NOT_SERVING, check(stub(Transport.mutualTls(clients.viewer()), s.endpoint()), ""));
        s.server().shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        StatusRuntimeException gone = assertThrows(
                StatusRuntimeException.class,
                () -> check(stub(Transport.mutualTls(clients.operator()), s.endpoint()), ""));
        assertEquals(Status.Code.UNAVAILABLE, gone.getStatus().getCode());
    }

    @Test
    void aServerWhosePolicyLeavesHealthOutRefusesToStart() {
        ServingHealth health = new ServingHealth();
        AccessPolicy withoutHealth =
                AccessPolicy.builder().allowAll(ECHO, Role.OPERATOR).build();
        IllegalStateException e = assertThrows(
                IllegalStateException.class,
                () -> Transport.plaintext()
                        .startServer(
                                new Endpoint.Tcp("127.0.0.1", 0),
                                executor,
                                List.of(echo(), health.definition()),
                                withoutHealth));
        assertEquals(
                "the access policy does not say who may call [grpc.health.v1.Health/Check, grpc.health.v1.Health/Watch]",
                e.getMessage());
    }
}
