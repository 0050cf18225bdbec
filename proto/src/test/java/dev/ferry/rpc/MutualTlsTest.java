package dev.ferry.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.pki.CertificateAuthority;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.Role;
import dev.ferry.rpc.testproto.EchoTest;
import dev.ferry.rpc.testproto.EchoTest.Ping;
import dev.ferry.rpc.testproto.EchoTest.Pong;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Mutual TLS as {@link Transport} builds it, on real TCP connections: who gets in, who is
 * refused and why, and what a caller's identity is inside a handler.
 */
class MutualTlsTest {
    private static final GrpcService ECHO = GrpcService.of(EchoTest.getDescriptor(), "Echo");
    private static final Clock CLOCK = Clock.systemUTC();
    /** How each server-side "Chat" ended, as its handler saw it. */
    private static final java.util.concurrent.BlockingQueue<String> CHATS_ENDED =
            new java.util.concurrent.LinkedBlockingQueue<>();

    @TempDir
    static Path dir;

    static Credentials host1;
    static Credentials host2;
    static Credentials operator;
    static Credentials viewer;
    static Credentials otherCluster;

    private final List<AutoCloseable> closing = new ArrayList<>();

    @BeforeAll
    static void issue() {
        CertificateAuthority ca = CertificateAuthority.create(dir.resolve("ca"), "prod", Duration.ofDays(30), CLOCK);
        host1 = issue(ca, "host-1", Role.AGENT, "agents");
        host2 = issue(ca, "host-2", Role.AGENT, "agents");
        operator = issue(ca, "alice", Role.OPERATOR, "people");
        viewer = issue(ca, "bob", Role.VIEWER, "people");
        CertificateAuthority foreign =
                CertificateAuthority.create(dir.resolve("foreign"), "prod", Duration.ofDays(30), CLOCK);
        // Same cluster name, same role and name as a real agent: only the CA differs.
        otherCluster = issue(foreign, "host-2", Role.AGENT, "foreign-agents");
    }

    private static Credentials issue(CertificateAuthority ca, String name, Role role, String sub) {
        Credentials c = ca.issue(name, role, Duration.ofDays(1), List.of(), List.of(), dir.resolve(sub), CLOCK);
        return Credentials.load(c.certificate(), c.key(), c.ca(), CLOCK);
    }

    @AfterEach
    void close() throws Exception {
        for (AutoCloseable c : closing.reversed()) {
            c.close();
        }
    }

    /** "Once" answers with the caller's identity; "Fanout" is for operators only. */
    private static ServerServiceDefinition whoAmI() {
        return ECHO.bind()
                .unary("Once", Ping.class, Pong.class, (req, out) -> {
                    out.onNext(Pong.newBuilder()
                            .setText(Callers.current().map(Object::toString).orElse("nobody"))
                            .build());
                    out.onCompleted();
                })
                .serverStreaming("Fanout", Ping.class, Pong.class, (req, out) -> {
                    out.onNext(Pong.newBuilder().setText("changed").build());
                    out.onCompleted();
                })
                .clientStreaming("Gather", Ping.class, Pong.class, out -> null)
                .bidiStreaming("Chat", Ping.class, Pong.class, out -> new io.grpc.stub.StreamObserver<Ping>() {
                    @Override
                    public void onNext(Ping p) {
                        out.onNext(Pong.newBuilder().setText("echo").build());
                    }

                    @Override
                    public void onError(Throwable t) {
                        CHATS_ENDED.add("cancelled: " + Status.fromThrowable(t).getCode());
                    }

                    @Override
                    public void onCompleted() {
                        CHATS_ENDED.add("completed");
                        out.onCompleted();
                    }
                })
                .build();
    }

    private static AccessPolicy policy() {
        return AccessPolicy.builder()
                .allow(ECHO, List.of("Once"), Role.AGENT, Role.OPERATOR, Role.VIEWER)
                .allow(ECHO, List.of("Fanout", "Gather", "Chat"), Role.OPERATOR)
                .build();
    }

    private Endpoint serve(Credentials as) throws Exception {
        return serve(as, policy());
    }

    private Endpoint serve(Credentials as, AccessPolicy policy) throws Exception {
        Transport t = Transport.mutualTls(as);
        Server server = t.startServer(
                new Endpoint.Tcp("127.0.0.1", 0), Executors.newCachedThreadPool(), List.of(whoAmI()), policy);
        closing.add(() -> server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        return Transport.boundEndpoint(new Endpoint.Tcp("127.0.0.1", 0), server);
    }

    private String once(Transport client, Endpoint to, PeerRequirement peer) {
        ManagedChannel ch = client.channel(to, peer);
        closing.add(() -> ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        MethodDescriptor<Ping, Pong> m = ECHO.method("Once", Ping.class, Pong.class);
        return ClientCalls.blockingUnaryCall(
                        ch, m, CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS), Ping.getDefaultInstance())
                .getText();
    }

    private void fanout(Transport client, Endpoint to, PeerRequirement peer) {
        ManagedChannel ch = client.channel(to, peer);
        closing.add(() -> ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        MethodDescriptor<Ping, Pong> m = ECHO.method("Fanout", Ping.class, Pong.class);
        ClientCalls.blockingServerStreamingCall(
                        ch, m, CallOptions.DEFAULT.withDeadlineAfter(20, TimeUnit.SECONDS), Ping.getDefaultInstance())
                .forEachRemaining(p -> {});
    }

    @Test
    void aCallerOverItsRateLimitIsRefusedAndOtherCallersAreNot() throws Exception {
        // One token per 100 s after a burst of 3: the fourth call is over the limit however slowly
        // this machine runs the first three.
        AccessPolicy limited = AccessPolicy.builder()
                .allow(ECHO, List.of("Once"), Role.AGENT, Role.OPERATOR, Role.VIEWER)
                .allow(ECHO, List.of("Fanout", "Gather", "Chat"), Role.OPERATOR)
                .limit(ECHO, List.of("Fanout"), new RateLimit(0.01, 3))
                .build();
        Endpoint e = serve(host1, limited);
        Transport alice = Transport.mutualTls(operator);
        for (int i = 0; i < 3; i++) {
            fanout(alice, e, PeerRequirement.agent("host-1"));
        }
        StatusRuntimeException x =
                assertThrows(StatusRuntimeException.class, () -> fanout(alice, e, PeerRequirement.agent("host-1")));
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, x.getStatus().getCode());
        assertTrue(
                x.getStatus()
                        .getDescription()
                        .startsWith("ferry://prod/operator/alice made more than 0.01/s (burst 3) requests that change "
                                + "the cluster; retry in "),
                x.getStatus().getDescription());
        // Methods outside the limit still answer her, and another operator has a budget of his own.
        assertEquals("ferry://prod/operator/alice", once(alice, e, PeerRequirement.agent("host-1")));
        CertificateAuthority ca = CertificateAuthority.load(dir.resolve("ca"));
        Credentials carol = issue(ca, "carol", Role.OPERATOR, "carol");
        fanout(Transport.mutualTls(carol), e, PeerRequirement.agent("host-1"));
    }

    @Test
    void aRevokedCertificateIsRefusedAtTheNextHandshakeWithoutARestart() throws Exception {
        // The server's CA directory is where `ferry pki revoke` writes crl.pem; host-1 honours
        // the list there (as a local cluster's daemons do with --crl pki/crl.pem).
        CertificateAuthority ca = CertificateAuthority.load(dir.resolve("ca"));
        Credentials dave = issue(ca, "dave", Role.OPERATOR, "dave");
        Credentials server = host1.withRevocationList(ca.revocationListFile());
        Endpoint e = serve(server);
        assertEquals("ferry://prod/operator/dave", once(Transport.mutualTls(dave), e, PeerRequirement.agent("host-1")));

        ca.revoke(List.of(dave.loadCertificate()), CLOCK);
        try {
            // A new transport: a new connection, so a new handshake.
            StatusRuntimeException x = assertThrows(
                    StatusRuntimeException.class,
                    () -> once(Transport.mutualTls(dave), e, PeerRequirement.agent("host-1")));
            assertEquals(Status.Code.UNAVAILABLE, x.getStatus().getCode());
            assertTrue(
                    TlsFailure.explain(x, "host-1").orElseThrow().contains("it refused this certificate (revoked"),
                    TlsFailure.explain(x, "host-1").toString());
            // Others are unaffected; and a client honouring the list refuses a revoked server too.
            assertEquals(
                    "ferry://prod/operator/alice",
                    once(Transport.mutualTls(operator), e, PeerRequirement.agent("host-1")));
            Credentials revokedServer = issue(ca, "host-9", Role.AGENT, "host-9");
            Endpoint gone = serve(revokedServer);
            ca.revoke(List.of(revokedServer.loadCertificate()), CLOCK);
            StatusRuntimeException y = assertThrows(
                    StatusRuntimeException.class,
                    () -> once(
                            Transport.mutualTls(operator.withRevocationList(ca.revocationListFile())),
                            gone,
                            PeerRequirement.agent("host-9")));
            assertTrue(causes(y).contains("ferry://prod/agent/host-9 (serial "), causes(y));
            assertTrue(causes(y).contains("was revoked at"), causes(y));
            assertTrue(
                    TlsFailure.explain(y, "host-9").orElseThrow().startsWith("refused the certificate of host-9: "),
                    TlsFailure.explain(y, "host-9").toString());
        } finally {
            java.nio.file.Files.delete(ca.revocationListFile());
        }
    }

    /**
     * Revocation reached only new handshakes: a revoked peer's open connection kept making calls,
     * and its open streams ran on, for as long as the connection lived (daemons keep theirs).
     */
    @Test
    void aRevokedPeersOpenConnectionIsCutOffWithoutARestart() throws Exception {
        CertificateAuthority ca = CertificateAuthority.load(dir.resolve("ca"));
        Credentials erin = issue(ca, "erin", Role.OPERATOR, "erin");
        Endpoint e = serve(host1.withRevocationList(ca.revocationListFile()));
        ManagedChannel ch = Transport.mutualTls(erin).channel(e, PeerRequirement.agent("host-1"));
        closing.add(() -> ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        MethodDescriptor<Ping, Pong> onceM = ECHO.method("Once", Ping.class, Pong.class);
        assertEquals(
                "ferry://prod/operator/erin",
                ClientCalls.blockingUnaryCall(ch, onceM, CallOptions.DEFAULT, Ping.getDefaultInstance())
                        .getText());
        // A stream that stays open on the same connection.
        java.util.concurrent.BlockingQueue<Object> chat = new java.util.concurrent.LinkedBlockingQueue<>();
        CHATS_ENDED.clear();
        io.grpc.stub.StreamObserver<Ping> send = io.grpc.stub.ClientCalls.asyncBidiStreamingCall(
                ch.newCall(ECHO.method("Chat", Ping.class, Pong.class), CallOptions.DEFAULT),
                new io.grpc.stub.StreamObserver<Pong>() {
                    @Override
                    public void onNext(Pong p) {
                        chat.add(p.getText());
                    }

                    @Override
                    public void onError(Throwable t) {
                        chat.add(Status.fromThrowable(t));
                    }

                    @Override
                    public void onCompleted() {
                        chat.add("completed");
                    }
                });
        send.onNext(Ping.getDefaultInstance());
        assertEquals("echo", chat.poll(20, TimeUnit.SECONDS));

        ca.revoke(List.of(erin.loadCertificate()), CLOCK);
        try {
            // The open stream ends, for the client and for the handler (which lets go as if she left).
            Object ended = chat.poll(20, TimeUnit.SECONDS);
            assertTrue(ended instanceof Status, "the stream must end with an error, got " + ended);
            Status st = (Status) ended;
            assertEquals(Status.Code.UNAUTHENTICATED, st.getCode());
            assertTrue(st.getDescription().contains("ferry://prod/operator/erin (serial "), st.getDescription());
            assertTrue(st.getDescription().contains("was revoked at"), st.getDescription());
            assertEquals("cancelled: CANCELLED", CHATS_ENDED.poll(20, TimeUnit.SECONDS));
            // Her next call on the same connection is refused at once.
            StatusRuntimeException x = assertThrows(
                    StatusRuntimeException.class,
                    () -> ClientCalls.blockingUnaryCall(ch, onceM, CallOptions.DEFAULT, Ping.getDefaultInstance()));
            assertEquals(Status.Code.UNAUTHENTICATED, x.getStatus().getCode());
            assertTrue(
                    x.getStatus().getDescription().contains("was revoked at"),
                    x.getStatus().getDescription());
            // Others are unaffected.
            assertEquals(
                    "ferry://prod/operator/alice",
                    once(Transport.mutualTls(operator), e, PeerRequirement.agent("host-1")));
        } finally {
            java.nio.file.Files.delete(ca.revocationListFile());
        }
    }

    /** Opens a "Chat" on {@code ch} whose replies, end or error land in {@code into}; one echo is awaited. */
    private static io.grpc.stub.StreamObserver<Ping> chat(
            ManagedChannel ch, java.util.concurrent.BlockingQueue<Object> into) throws InterruptedException {
        io.grpc.stub.StreamObserver<Ping> send = io.grpc.stub.ClientCalls.asyncBidiStreamingCall(
                ch.newCall(ECHO.method("Chat", Ping.class, Pong.class), CallOptions.DEFAULT),
                new io.grpc.stub.StreamObserver<Pong>() {
                    @Override
                    public void onNext(Pong p) {
                        into.add(p.getText());
                    }

                    @Override
                    public void onError(Throwable t) {
                        into.add(Status.fromThrowable(t));
                    }

                    @Override
                    public void onCompleted() {
                        into.add("completed");
                    }
                });
        send.onNext(Ping.getDefaultInstance());
        assertEquals("echo", into.poll(20, TimeUnit.SECONDS));
        return send;
    }

    /**
     * Revocation reached a client only at its next handshake: a channel already connected to a
     * server whose certificate was revoked kept its open streams and made new calls on the same
     * connection (a revoked agent or coordinator kept its peers' channels to it).
     */
    @Test
    void aRevokedServersOpenStreamsAndConnectionsAreCutOffWithoutARestart() throws Exception {
        CertificateAuthority ca = CertificateAuthority.load(dir.resolve("ca"));
        Credentials host7 = issue(ca, "host-7", Role.AGENT, "host-7");
        Credentials host8 = issue(ca, "host-8", Role.AGENT, "host-8");
        Endpoint revokedServer = serve(host7);
        Endpoint otherServer = serve(host8);
        Transport client = Transport.mutualTls(operator.withRevocationList(ca.revocationListFile()));
        // A channel with an open stream, a connected channel with no call open, and a stream to
        // another server, all of one transport.
        ManagedChannel streaming = client.channel(revokedServer, PeerRequirement.agent("host-7"));
        ManagedChannel idle = client.channel(revokedServer, PeerRequirement.agent("host-7"));
        ManagedChannel other = client.channel(otherServer, PeerRequirement.agent("host-8"));
        for (ManagedChannel c : List.of(streaming, idle, other)) {
            closing.add(() -> c.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        }
        MethodDescriptor<Ping, Pong> onceM = ECHO.method("Once", Ping.class, Pong.class);
        assertEquals(
                "ferry://prod/operator/alice",
                ClientCalls.blockingUnaryCall(idle, onceM, CallOptions.DEFAULT, Ping.getDefaultInstance())
                        .getText());
        CHATS_ENDED.clear();
        java.util.concurrent.BlockingQueue<Object> toRevoked = new java.util.concurrent.LinkedBlockingQueue<>();
        java.util.concurrent.BlockingQueue<Object> toOther = new java.util.concurrent.LinkedBlockingQueue<>();
        io.grpc.stub.StreamObserver<Ping> sendRevoked = chat(streaming, toRevoked);
        io.grpc.stub.StreamObserver<Ping> sendOther = chat(other, toOther);

        long revokedAt = System.nanoTime();
        ca.revoke(List.of(host7.loadCertificate()), CLOCK);
        try {
            Object ended = toRevoked.poll(20, TimeUnit.SECONDS);
            long endedMs = (System.nanoTime() - revokedAt) / 1_000_000;
            System.out.println("the open stream to the revoked server ended " + endedMs + " ms after the revocation");
            assertTrue(ended instanceof Status, "the stream must end with an error, got " + ended);
            Status st = (Status) ended;
            assertEquals(Status.Code.UNAUTHENTICATED, st.getCode());
            assertTrue(st.getDescription().contains("ferry://prod/agent/host-7 (serial "), st.getDescription());
            assertTrue(st.getDescription().contains("was revoked at"), st.getDescription());
            // What the caller sends after the end is dropped, not thrown back at it.
            sendRevoked.onNext(Ping.getDefaultInstance());
            sendRevoked.onCompleted();
            // The server's handler saw the call cancelled, as if the client had gone.
            assertEquals("cancelled: CANCELLED", CHATS_ENDED.poll(20, TimeUnit.SECONDS));

            // The next call on either channel fails, naming the revocation: the channels were sent
            // to reconnect (so the new handshake refuses the server, UNAVAILABLE); a call that
            // starts before that on a connection still open ends at once, UNAUTHENTICATED.
            for (ManagedChannel c : List.of(idle, streaming)) {
                StatusRuntimeException y = assertThrows(
                        StatusRuntimeException.class,
                        () -> ClientCalls.blockingUnaryCall(c, onceM, CallOptions.DEFAULT, Ping.getDefaultInstance()));
                assertTrue(
                        y.getStatus().getCode() == Status.Code.UNAVAILABLE
                                || y.getStatus().getCode() == Status.Code.UNAUTHENTICATED,
                        causes(y));
                System.out.println(
                        "the next call after the revocation: " + y.getStatus().getCode());
                assertTrue(causes(y).contains("ferry://prod/agent/host-7 (serial "), causes(y));
                assertTrue(causes(y).contains("was revoked at"), causes(y));
            }

            // The other server is unaffected: its stream runs on, and it takes new calls.
            sendOther.onNext(Ping.getDefaultInstance());
            assertEquals("echo", toOther.poll(20, TimeUnit.SECONDS));
            assertEquals(
                    "ferry://prod/operator/alice",
                    ClientCalls.blockingUnaryCall(other, onceM, CallOptions.DEFAULT, Ping.getDefaultInstance())
                            .getText());
            sendOther.onCompleted();
            assertEquals("completed", toOther.poll(20, TimeUnit.SECONDS));
        } finally {
            java.nio.file.Files.delete(ca.revocationListFile());
        }
    }

    @Test
    void aHandlerKnowsItsCallerFromTheCallersCertificate() throws Exception {
        Endpoint e = serve(host1);
        assertEquals("ferry://prod/agent/host-2", once(Transport.mutualTls(host2), e, PeerRequirement.agent("host-1")));
        assertEquals(
                "ferry://prod/operator/alice", once(Transport.mutualTls(operator), e, PeerRequirement.agent("host-1")));
    }

    @Test
    void aChannelForOneHostRefusesAnotherHostsCertificate() throws Exception {
        // A migration lane built for host-2 must not hand memory to host-1, although host-1's
        // certificate is valid for this cluster.
        Endpoint e = serve(host1);
        StatusRuntimeException x = assertThrows(
                StatusRuntimeException.class,
                () -> once(Transport.mutualTls(operator), e, PeerRequirement.agent("host-2")));
        assertEquals(Status.Code.UNAVAILABLE, x.getStatus().getCode());
        assertTrue(causes(x).contains("ferry://prod/agent/host-1 but this connection is for agent host-2"), causes(x));
    }

    @Test
    void aCertificateOfAnotherCaIsRefusedEvenWithTheSameName() throws Exception {
        Endpoint e = serve(host1);
        StatusRuntimeException x = assertThrows(
                StatusRuntimeException.class,
                () -> once(Transport.mutualTls(otherCluster), e, PeerRequirement.agent("host-1")));
        assertEquals(Status.Code.UNAVAILABLE, x.getStatus().getCode());
        // And the other way round: a server with the foreign certificate is not believed.
        Endpoint rogue = serve(otherCluster);
        StatusRuntimeException y = assertThrows(
                StatusRuntimeException.class,
                () -> once(Transport.mutualTls(host1), rogue, PeerRequirement.agent("host-2")));
        assertTrue(causes(y).contains("not issued by cluster prod's CA"), causes(y));
    }

    @Test
    void aPlaintextClientGetsNoHttp2FromASecureServer() throws Exception {
        Endpoint e = serve(host1);
        StatusRuntimeException x = assertThrows(
                StatusRuntimeException.class, () -> once(Transport.plaintext(), e, PeerRequirement.agent("host-1")));
        assertEquals(Status.Code.UNAVAILABLE, x.getStatus().getCode());
        // What the issue saw: a bare HTTP/2 preface got SETTINGS back. Now nothing HTTP/2 comes back.
        Endpoint.Tcp tcp = (Endpoint.Tcp) e;
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(tcp.host(), tcp.port()), 5000);
            s.setSoTimeout(5000);
            OutputStream out = s.getOutputStream();
            out.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            out.write(new byte[] {0, 0, 0, 4, 0, 0, 0, 0, 0}); // an empty SETTINGS frame
            out.flush();
            InputStream in = s.getInputStream();
            int first;
            try {
                first = in.read();
            } catch (java.net.SocketException reset) {
                first = -1;
            }
            // An HTTP/2 frame starts with its 24-bit length, 0 for SETTINGS; TLS alerts start with 0x15.
            assertNotEquals(0, first, "the server answered in HTTP/2");
        }
    }

    @Test
    void olderTlsVersionsAreRefused() throws Exception {
        Endpoint.Tcp e = (Endpoint.Tcp) serve(host1);
        SSLContext ctx = SSLContext.getInstance("TLSv1.2");
        ctx.init(null, new TrustManager[] {new TrustingEverything()}, null);
        try (SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(e.host(), e.port())) {
            s.setEnabledProtocols(new String[] {"TLSv1.2"});
            s.setSoTimeout(5000);
            assertThrows(java.io.IOException.class, s::startHandshake);
        }
    }

    @Test
    void aViewerMayLookButNotChange() throws Exception {
        Endpoint e = serve(host1);
        Transport bob = Transport.mutualTls(viewer);
        assertEquals("ferry://prod/viewer/bob", once(bob, e, PeerRequirement.agent("host-1")));
        StatusRuntimeException x =
                assertThrows(StatusRuntimeException.class, () -> fanout(bob, e, PeerRequirement.agent("host-1")));
        assertEquals(Status.Code.PERMISSION_DENIED, x.getStatus().getCode());
        assertTrue(
                x.getStatus().getDescription().contains("needs the role [operator]; ferry://prod/viewer/bob is viewer"),
                x.getStatus().getDescription());
        fanout(Transport.mutualTls(operator), e, PeerRequirement.agent("host-1"));
    }

    @Test
    void aServerWhosePolicyMissesAMethodDoesNotStart() {
        AccessPolicy partial = AccessPolicy.builder()
                .allow(ECHO, List.of("Once"), Role.OPERATOR)
                .build();
        IllegalStateException x = assertThrows(
                IllegalStateException.class,
                () -> Transport.plaintext()
                        .startServer(new Endpoint.Tcp("127.0.0.1", 0), Runnable::run, List.of(whoAmI()), partial));
        assertTrue(x.getMessage().contains("Fanout"), x.getMessage());
    }

    @Test
    void policyDecisionsArePure() {
        AccessPolicy p = policy();
        var alice = new dev.ferry.pki.Identity("prod", Role.OPERATOR, "alice");
        var bob = new dev.ferry.pki.Identity("prod", Role.VIEWER, "bob");
        String fanout = ECHO.fullMethodName("Fanout");
        assertEquals(new AccessPolicy.Decision.Allowed(), p.decide(fanout, alice));
        assertTrue(p.decide(fanout, bob) instanceof AccessPolicy.Decision.Denied);
        assertTrue(p.decide("ferry.Unknown/Method", alice) instanceof AccessPolicy.Decision.Denied);
    }

    private static String causes(Throwable t) {
        StringBuilder all = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            all.append(c).append(" | ");
        }
        return all.toString();
    }

    /** Accepts any server, so that only the protocol version decides the handshake. */
    private static final class TrustingEverything implements X509TrustManager {
        @Override
        public void checkClientTrusted(java.security.cert.X509Certificate[] chain, String authType) {}

        @Override
        public void checkServerTrusted(java.security.cert.X509Certificate[] chain, String authType) {}

        @Override
        public java.security.cert.X509Certificate[] getAcceptedIssuers() {
            return new java.security.cert.X509Certificate[0];
        }
    }
}
