package dev.ferry.rpc;

import io.grpc.ClientInterceptor;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import java.io.IOException;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
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
    private final List<ClientInterceptor> interceptors;
    private final Keepalive keepalive;

    public Transport(TransportSecurity security) {
        this(security, List.of(), Keepalive.DEFAULT);
    }

    private Transport(TransportSecurity security, List<ClientInterceptor> interceptors, Keepalive keepalive) {
        this.security = Objects.requireNonNull(security, "security");
        this.interceptors = List.copyOf(interceptors);
        this.keepalive = Objects.requireNonNull(keepalive, "keepalive");
    }

    /** The same transport with these keepalive settings on the servers and channels it builds. */
    public Transport withKeepalive(Keepalive k) {
        return new Transport(security, interceptors, k);
    }

    public Keepalive keepalive() {
        return keepalive;
    }

    /**
     * The same transport with {@code interceptor} on every channel it builds (metrics, tracing, or
     * a test's fault injection).
     */
    public Transport withClientInterceptor(ClientInterceptor interceptor) {
        List<ClientInterceptor> all = new java.util.ArrayList<>(interceptors);
        all.add(interceptor);
        return new Transport(security, all, keepalive);
    }

    public static Transport plaintext() {
        return new Transport(TransportSecurity.plaintext());
    }

    public TransportSecurity security() {
        return security;
    }

    /** Starts a server on {@code listen} (port 0 picks a free port; see {@link #boundEndpoint}). */
    public Server startServer(Endpoint listen, Executor executor, List<ServerServiceDefinition> services)
            throws IOException {
        Server server = switch (listen) {
            case Endpoint.Tcp tcp -> {
                NettyServerBuilder b = NettyServerBuilder.forAddress(
                                tcp.socketAddress(), ComposingCumulation.server(serverCredentials()))
                        .flowControlWindow(FLOW_CONTROL_WINDOW)
                        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
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
        return switch (security) {
            case TransportSecurity.Plaintext p -> io.grpc.InsecureServerCredentials.create();
        };
    }

    private io.grpc.ChannelCredentials channelCredentials() {
        return switch (security) {
            case TransportSecurity.Plaintext p -> io.grpc.InsecureChannelCredentials.create();
        };
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
     * flow-control window and event loop.
     */
    public ManagedChannel channel(Endpoint target) {
        return channel(target, false);
    }

    /**
     * A channel for one migration lane: like {@link #channel}, and it also pings while no call is
     * open on it, so that a connection to a dead destination fails its lane even before (or
     * between) calls. Servers built here permit that.
     */
    public ManagedChannel laneChannel(Endpoint target) {
        return channel(target, true);
    }

    private ManagedChannel channel(Endpoint target, boolean keepAliveWithoutCalls) {
        return switch (target) {
            case Endpoint.Tcp tcp ->
                NettyChannelBuilder.forAddress(tcp.host(), tcp.port(), ComposingCumulation.client(channelCredentials()))
                        .flowControlWindow(FLOW_CONTROL_WINDOW)
                        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
                        .keepAliveTime(keepalive.time().toNanos(), TimeUnit.NANOSECONDS)
                        .keepAliveTimeout(keepalive.timeout().toNanos(), TimeUnit.NANOSECONDS)
                        .keepAliveWithoutCalls(keepAliveWithoutCalls)
                        .intercept(interceptors)
                        .build();
            case Endpoint.InProcess ip ->
                InProcessChannelBuilder.forName(ip.name())
                        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
                        .intercept(interceptors)
                        .build();
        };
    }
}
