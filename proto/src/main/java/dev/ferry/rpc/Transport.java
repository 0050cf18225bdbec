package dev.ferry.rpc;

import dev.ferry.pki.CertificateExpiry;
import io.grpc.ClientInterceptor;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;

/**
 * The one place where gRPC servers and channels are built, so transport settings (flow-control
 * windows, message limits, keepalive) and security are decided once for every caller.
 */
public final class Transport {
    /**
     * Largest message either side accepts. A page batch is at most one window of pages (1 MiB of
     * data) plus a header; anything much larger is a malformed or hostile frame.
     */
    public static final int MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

    /**
     * HTTP/2 flow-control window per stream and connection. Larger than gRPC's 1 MiB default so
     * that one lane keeps a loopback or LAN link busy; small enough that memory stays bounded at
     * lanes x window whatever the guest size.
     */
    public static final int FLOW_CONTROL_WINDOW = 8 * 1024 * 1024;

    /**
     * Calls one connection may have open at a server of ours (HTTP/2 MAX_CONCURRENT_STREAMS); a
     * client that opens more waits for one to end. A migration uses one call per lane (at most 64)
     * plus a few control calls, a coordinator a few per VM it is acting on; gRPC's own default is
     * unbounded, so one peer could hold any number of handlers and buffers open at once.
     */
    public static final int MAX_CALLS_PER_CONNECTION = 256;

    /**
     * How often a client may ping a server of ours. Below the shortest keepalive time gRPC lets a
     * client use (10 s), so that no client of ours is ever told it pings too often (a GOAWAY that
     * would end its calls).
     */
    static final Duration PERMIT_KEEPALIVE_TIME = Duration.ofSeconds(5);

    /**
     * HTTP/2 keepalive: after {@code time} without reading anything on a connection, the side pings;
     * without an answer within {@code timeout} it closes the connection and every call on it fails.
     * A peer that is gone without a FIN or RST (a blackholed link, a host powered off) is so noticed
     * within about {@code time + timeout} of its last byte, on both ends, instead of after TCP's
     * retransmission timeout (many minutes) or never (an idle stream sends nothing to time out).
     *
     * <p>A healthy peer answers at once, whatever its application is doing: pings are answered by
     * the transport. Only a connection that reads nothing for {@code time} pings at all, and a
     * sender's queue is then empty, so the answer is not stuck behind data; {@code timeout} need only
     * cover a round trip, a few lost packets and a scheduling hiccup. gRPC raises {@code time} to at
     * least 10 s, on servers and clients alike.
     */
    public record Keepalive(Duration time, Duration timeout) {
        /** Noticed within about 20 s on any network; a ping every 10 s on a quiet connection costs nothing. */
        public static final Keepalive DEFAULT = new Keepalive(Duration.ofSeconds(10), Duration.ofSeconds(10));

        public Keepalive {
            Objects.requireNonNull(time, "time");
            Objects.requireNonNull(timeout, "timeout");
            if (time.isNegative() || time.isZero() || timeout.isNegative() || timeout.isZero()) {
                throw new IllegalArgumentException(
                        "keepalive time and timeout must be positive, got " + time + " and " + timeout);
            }
        }
    }

    private final TransportSecurity security;
    /** The TLS contexts of {@link TransportSecurity.MutualTls}; null for plaintext. */
    private final TlsContexts tls;

    private final List<ClientInterceptor> interceptors;
    private final Keepalive keepalive;

    public Transport(TransportSecurity security) {
        this(security, tlsOf(security), List.of(), Keepalive.DEFAULT);
    }

    private Transport(
            TransportSecurity security, TlsContexts tls, List<ClientInterceptor> interceptors, Keepalive keepalive) {
        this.security = Objects.requireNonNull(security, "security");
        this.tls = tls;
        this.interceptors = List.copyOf(interceptors);
        this.keepalive = Objects.requireNonNull(keepalive, "keepalive");
    }

    private static TlsContexts tlsOf(TransportSecurity security) {
        return switch (security) {
            case TransportSecurity.Plaintext p -> null;
            case TransportSecurity.MutualTls m -> new TlsContexts(m.credentials(), java.time.Clock.systemUTC());
        };
    }

    /** A transport with mutual TLS on every server and channel, from {@code credentials}. */
    public static Transport mutualTls(dev.ferry.pki.Credentials credentials) {
        return new Transport(TransportSecurity.mutualTls(credentials));
    }

    /**
     * The TLS implementation every secure transport of this process uses ("BoringSSL" via
     * netty-tcnative, or "JDK"), for start-up logs and benchmark reports.
     */
    public static String tlsImplementation() {
        return TlsContexts.providerName();
    }

    /** Whether servers and channels built here authenticate both ends. */
    public boolean secure() {
        return tls != null;
    }

    /** The same transport with these keepalive settings on the servers and channels it builds. */
    public Transport withKeepalive(Keepalive k) {
        return new Transport(security, tls, interceptors, k);
    }

    public Keepalive keepalive() {
        return keepalive;
    }

    /**
     * The identity this transport presents and when its certificate and CA expire, as read when it
     * was built: a renewed file on disk changes nothing until the holder restarts, so this (not the
     * file) is the holder's expiry to report. Empty for plaintext.
     */
    public Optional<CertificateExpiry> expiry() {
        return tls == null ? Optional.empty() : Optional.of(tls.expiry());
    }

    /**
     * The same transport with {@code interceptor} on every channel it builds (metrics, tracing, or
     * a test's fault injection).
     */
    public Transport withClientInterceptor(ClientInterceptor interceptor) {
        List<ClientInterceptor> all = new java.util.ArrayList<>(interceptors);
        all.add(interceptor);
        return new Transport(security, tls, all, keepalive);
    }

    public static Transport plaintext() {
        return new Transport(TransportSecurity.plaintext());
    }

    public TransportSecurity security() {
        return security;
    }

    /**
     * Starts a server on {@code listen} (port 0 picks a free port; see {@link #boundEndpoint}). With
     * mutual TLS every call carries its caller's identity ({@link Callers}) and is refused unless
     * {@code policy} allows the caller's role; the policy must name every method of {@code services}
     * whatever the security, so a plaintext test also catches a method nobody decided on.
     */
    public Server startServer(
            Endpoint listen, Executor executor, List<ServerServiceDefinition> rawServices, AccessPolicy policy)
            throws IOException {
        policy.requireCovers(rawServices);
        List<ServerServiceDefinition> services = tls == null
                ? rawServices
                : rawServices.stream()
                        // The last interceptor runs first: a revoked peer is refused before anything, and
                        // the identity is known before the policy asks.
                        .map(s -> ServerInterceptors.intercept(
                                s, policy.interceptor(), Callers.fromTlsSession(), tls.cutoff()))
                        .toList();
        if (tls != null && listen instanceof Endpoint.InProcess) {
            throw new IllegalArgumentException(
                    "an in-process server carries no certificates; use plaintext for " + listen);
        }
        Server server = switch (listen) {
            case Endpoint.Tcp tcp -> {
                NettyServerBuilder b = NettyServerBuilder.forAddress(
                                tcp.socketAddress(), ComposingCumulation.server(serverCredentials()))
                        .flowControlWindow(FLOW_CONTROL_WINDOW)
                        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
                        .maxConcurrentCallsPerConnection(MAX_CALLS_PER_CONNECTION)
                        // The server pings too: a client gone silent (a migration's source behind a
                        // blackholed link) ends its calls, so the destination lets go of what it held.
                        .keepAliveTime(keepalive.time().toNanos(), TimeUnit.NANOSECONDS)
                        .keepAliveTimeout(keepalive.timeout().toNanos(), TimeUnit.NANOSECONDS)
                        .permitKeepAliveTime(PERMIT_KEEPALIVE_TIME.toNanos(), TimeUnit.NANOSECONDS)
                        .permitKeepAliveWithoutCalls(true)
                        .executor(executor);
                services.forEach(b::addService);
                yield b.build();
            }
            case Endpoint.InProcess ip -> {
                InProcessServerBuilder b = InProcessServerBuilder.forName(ip.name())
                        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
                        .executor(executor);
                services.forEach(b::addService);
                yield b.build();
            }
        };
        return server.start();
    }

    private io.grpc.ServerCredentials serverCredentials() {
        return tls == null ? io.grpc.InsecureServerCredentials.create() : tls.server();
    }

    private io.grpc.ChannelCredentials channelCredentials(PeerRequirement peer) {
        return tls == null ? io.grpc.InsecureChannelCredentials.create() : tls.client(peer);
    }

    /** The endpoint a started server actually listens on (resolves port 0). */
    public static Endpoint boundEndpoint(Endpoint requested, Server server) {
        return switch (requested) {
            case Endpoint.Tcp tcp -> new Endpoint.Tcp(tcp.host(), server.getPort());
            case Endpoint.InProcess ip -> ip;
        };
    }

    /**
     * A channel to {@code target}. Each call returns a new channel and so, for TCP, a new
     * connection: migration lanes each take their own so that they do not share one connection's
     * flow-control window and event loop. With mutual TLS the handshake fails unless the server's
     * certificate is one {@code peer} accepts, and calls to a server whose certificate is revoked
     * after the handshake are ended ({@link RevokedServerCutoff}).
     */
    public ManagedChannel channel(Endpoint target, PeerRequirement peer) {
        return channel(target, peer, false);
    }

    /**
     * A channel for one migration lane: like {@link #channel}, and it also pings while no call is
     * open on it, so that a connection to a dead destination fails its lane even before (or
     * between) calls. Servers built here permit that.
     */
    public ManagedChannel laneChannel(Endpoint target, PeerRequirement peer) {
        return channel(target, peer, true);
    }

    private ManagedChannel channel(Endpoint target, PeerRequirement peer, boolean keepAliveWithoutCalls) {
        Objects.requireNonNull(peer, "peer");
        return switch (target) {
            case Endpoint.Tcp tcp -> {
                NettyChannelBuilder b = NettyChannelBuilder.forAddress(
                                tcp.host(), tcp.port(), ComposingCumulation.client(channelCredentials(peer)))
                        .flowControlWindow(FLOW_CONTROL_WINDOW)
                        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
                        .keepAliveTime(keepalive.time().toNanos(), TimeUnit.NANOSECONDS)
                        .keepAliveTimeout(keepalive.timeout().toNanos(), TimeUnit.NANOSECONDS)
                        .keepAliveWithoutCalls(keepAliveWithoutCalls);
                // The revocation check first, so that it runs innermost (gRPC runs the last added
                // first) and sees the real call's TLS session whatever the other interceptors do.
                RevokedServerCutoff.ChannelCutoff cutoff =
                        tls == null ? null : tls.serverCutoff().newChannel();
                if (cutoff != null) {
                    b.intercept(cutoff);
                }
                ManagedChannel built = b.intercept(interceptors).build();
                if (cutoff != null) {
                    cutoff.bind(built);
                }
                yield built;
            }
            case Endpoint.InProcess ip
            when tls != null ->
                throw new IllegalArgumentException(
                        "an in-process channel carries no certificates; use plaintext for " + target);
            case Endpoint.InProcess ip ->
                InProcessChannelBuilder.forName(ip.name())
                        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
                        .intercept(interceptors)
                        .build();
        };
    }
}
