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

    private final TransportSecurity security;
    private final List<ClientInterceptor> interceptors;

    public Transport(TransportSecurity security) {
        this(security, List.of());
    }

    private Transport(TransportSecurity security, List<ClientInterceptor> interceptors) {
        this.security = Objects.requireNonNull(security, "security");
        this.interceptors = List.copyOf(interceptors);
    }

    /**
     * The same transport with {@code interceptor} on every channel it builds (metrics, tracing, or
     * a test's fault injection).
     */
    public Transport withClientInterceptor(ClientInterceptor interceptor) {
        List<ClientInterceptor> all = new java.util.ArrayList<>(interceptors);
        all.add(interceptor);
        return new Transport(security, all);
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
                        .permitKeepAliveTime(5, TimeUnit.SECONDS)
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
        return switch (target) {
            case Endpoint.Tcp tcp ->
                NettyChannelBuilder.forAddress(tcp.host(), tcp.port(), ComposingCumulation.client(channelCredentials()))
                        .flowControlWindow(FLOW_CONTROL_WINDOW)
                        .maxInboundMessageSize(MAX_MESSAGE_BYTES)
                        .keepAliveTime(10, TimeUnit.SECONDS)
                        .keepAliveTimeout(5, TimeUnit.SECONDS)
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
