package dev.ferry.rpc;

import io.grpc.ChannelCredentials;
import io.grpc.ServerCredentials;
import io.grpc.internal.ObjectPool;
import io.grpc.netty.shaded.io.grpc.netty.GrpcHttp2ConnectionHandler;
import io.grpc.netty.shaded.io.grpc.netty.InternalNettyChannelCredentials;
import io.grpc.netty.shaded.io.grpc.netty.InternalNettyServerCredentials;
import io.grpc.netty.shaded.io.grpc.netty.InternalProtocolNegotiator;
import io.grpc.netty.shaded.io.netty.channel.ChannelHandler;
import io.grpc.netty.shaded.io.netty.handler.codec.ByteToMessageDecoder;
import io.grpc.netty.shaded.io.netty.util.AsciiString;
import java.util.concurrent.Executor;

/**
 * Makes the HTTP/2 frame decoder of every connection gather what it reads as a composite buffer
 * instead of copying it.
 *
 * <p>Why: netty's default (merging) cumulation copies a read into a new buffer whenever the
 * previous one is still referenced, and gRPC always holds slices of it (the DATA frames of a
 * message not yet complete). With megabyte page batches that is one extra copy of every byte a
 * receiver takes in, about a quarter of its CPU time in the profile (docs/BENCHMARKS.md).
 * Composing keeps the bytes where the socket read put them.
 *
 * <p>gRPC offers no public knob for this; the hook is its {@code Internal*} negotiator API,
 * which wraps whatever credentials {@link Transport} chose (plaintext now, TLS later), so the
 * security of a connection and its buffering stay independent. {@code ComposingCumulationTest}
 * pins that the hook is still there and still takes effect when gRPC is upgraded.
 */
final class ComposingCumulation {
    private ComposingCumulation() {}

    static ServerCredentials server(ServerCredentials credentials) {
        InternalProtocolNegotiator.ServerFactory inner = InternalNettyServerCredentials.toNegotiator(credentials);
        return InternalNettyServerCredentials.create(new InternalProtocolNegotiator.ServerFactory() {
            @Override
            public InternalProtocolNegotiator.ProtocolNegotiator newNegotiator(
                    ObjectPool<? extends Executor> offloadExecutorPool) {
                return new Composing(inner.newNegotiator(offloadExecutorPool));
            }
        });
    }

    static ChannelCredentials client(ChannelCredentials credentials) {
        InternalProtocolNegotiator.ClientFactory inner = InternalNettyChannelCredentials.toNegotiator(credentials);
        return InternalNettyChannelCredentials.create(new InternalProtocolNegotiator.ClientFactory() {
            @Override
            public InternalProtocolNegotiator.ProtocolNegotiator newNegotiator() {
                return new Composing(inner.newNegotiator());
            }

            @Override
            public int getDefaultPort() {
                return inner.getDefaultPort();
            }
        });
    }

    private record Composing(InternalProtocolNegotiator.ProtocolNegotiator inner)
            implements InternalProtocolNegotiator.ProtocolNegotiator {
        @Override
        public AsciiString scheme() {
            return inner.scheme();
        }

        @Override
        public ChannelHandler newHandler(GrpcHttp2ConnectionHandler grpcHandler) {
            grpcHandler.setCumulator(ByteToMessageDecoder.COMPOSITE_CUMULATOR);
            return inner.newHandler(grpcHandler);
        }

        @Override
        public void close() {
            inner.close();
        }
    }
}
