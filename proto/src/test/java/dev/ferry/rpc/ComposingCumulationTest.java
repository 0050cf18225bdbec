package dev.ferry.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import io.grpc.ChannelLogger;
import io.grpc.InsecureChannelCredentials;
import io.grpc.InsecureServerCredentials;
import io.grpc.internal.FixedObjectPool;
import io.grpc.netty.shaded.io.grpc.netty.GrpcHttp2ConnectionHandler;
import io.grpc.netty.shaded.io.grpc.netty.InternalNettyChannelCredentials;
import io.grpc.netty.shaded.io.grpc.netty.InternalNettyServerCredentials;
import io.grpc.netty.shaded.io.grpc.netty.InternalProtocolNegotiator;
import io.grpc.netty.shaded.io.netty.handler.codec.ByteToMessageDecoder;
import io.grpc.netty.shaded.io.netty.handler.codec.http2.DefaultHttp2Connection;
import io.grpc.netty.shaded.io.netty.handler.codec.http2.DefaultHttp2ConnectionDecoder;
import io.grpc.netty.shaded.io.netty.handler.codec.http2.DefaultHttp2ConnectionEncoder;
import io.grpc.netty.shaded.io.netty.handler.codec.http2.DefaultHttp2FrameReader;
import io.grpc.netty.shaded.io.netty.handler.codec.http2.DefaultHttp2FrameWriter;
import io.grpc.netty.shaded.io.netty.handler.codec.http2.Http2Settings;
import java.lang.reflect.Field;
import java.util.concurrent.Executor;
import org.junit.jupiter.api.Test;

/**
 * The receive path's composing cumulation rests on gRPC's internal negotiator API; this pins that
 * the hook still reaches the connection handler of both servers and channels (an upgrade of gRPC
 * that drops it fails here, not as a silent loss of a quarter of the receiver's throughput).
 */
class ComposingCumulationTest {
    @Test
    void serverConnectionsComposeWhatTheyRead() throws Exception {
        InternalProtocolNegotiator.ServerFactory factory = InternalNettyServerCredentials.toNegotiator(
                ComposingCumulation.server(InsecureServerCredentials.create()));
        InternalProtocolNegotiator.ProtocolNegotiator negotiator =
                factory.newNegotiator(new FixedObjectPool<Executor>(Runnable::run));
        GrpcHttp2ConnectionHandler handler = handler(true);
        assertSame(mergeCumulator(), cumulator(handler), "netty's default, before the hook");
        negotiator.newHandler(handler);
        assertSame(ByteToMessageDecoder.COMPOSITE_CUMULATOR, cumulator(handler));
        assertEquals("http", negotiator.scheme().toString(), "plaintext stays plaintext");
        negotiator.close();
    }

    @Test
    void channelConnectionsComposeWhatTheyRead() throws Exception {
        InternalProtocolNegotiator.ClientFactory factory = InternalNettyChannelCredentials.toNegotiator(
                ComposingCumulation.client(InsecureChannelCredentials.create()));
        InternalProtocolNegotiator.ProtocolNegotiator negotiator = factory.newNegotiator();
        GrpcHttp2ConnectionHandler handler = handler(false);
        negotiator.newHandler(handler);
        assertSame(ByteToMessageDecoder.COMPOSITE_CUMULATOR, cumulator(handler));
        assertEquals("http", negotiator.scheme().toString());
        negotiator.close();
    }

    private static GrpcHttp2ConnectionHandler handler(boolean server) {
        DefaultHttp2Connection connection = new DefaultHttp2Connection(server);
        DefaultHttp2ConnectionEncoder encoder =
                new DefaultHttp2ConnectionEncoder(connection, new DefaultHttp2FrameWriter());
        DefaultHttp2ConnectionDecoder decoder =
                new DefaultHttp2ConnectionDecoder(connection, encoder, new DefaultHttp2FrameReader());
        return new GrpcHttp2ConnectionHandler(null, decoder, encoder, new Http2Settings(), new ChannelLogger() {
            @Override
            public void log(ChannelLogLevel level, String message) {}

            @Override
            public void log(ChannelLogLevel level, String messageFormat, Object... args) {}
        }) {};
    }

    private static Object mergeCumulator() {
        return ByteToMessageDecoder.MERGE_CUMULATOR;
    }

    private static Object cumulator(ByteToMessageDecoder decoder) throws ReflectiveOperationException {
        Field f = ByteToMessageDecoder.class.getDeclaredField("cumulator");
        f.setAccessible(true);
        return f.get(decoder);
    }
}
