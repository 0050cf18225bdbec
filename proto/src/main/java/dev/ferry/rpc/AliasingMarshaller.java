package dev.ferry.rpc;

import com.google.protobuf.CodedInputStream;
import com.google.protobuf.ExtensionRegistryLite;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.Message;
import com.google.protobuf.Parser;
import com.google.protobuf.UnsafeByteOperations;
import io.grpc.KnownLength;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.protobuf.ProtoUtils;
import java.io.IOException;
import java.io.InputStream;

/**
 * A protobuf marshaller that parses each message out of one buffer with aliasing on, so a large
 * {@code bytes} field (a page batch's data) refers to the received buffer instead of being copied
 * again; at a gigabyte per second that copy and its allocation are a large part of a receiver's
 * work. Serialization is protobuf's own, streamed straight into gRPC's buffers.
 */
final class AliasingMarshaller<T extends Message> implements MethodDescriptor.Marshaller<T> {
    private final MethodDescriptor.Marshaller<T> writer;
    private final Parser<T> parser;

    @SuppressWarnings("unchecked")
    AliasingMarshaller(T defaultInstance) {
        this.writer = ProtoUtils.marshaller(defaultInstance);
        this.parser = (Parser<T>) defaultInstance.getParserForType();
    }

    @Override
    public InputStream stream(T value) {
        return writer.stream(value);
    }

    @Override
    public T parse(InputStream stream) {
        try {
            byte[] buf;
            if (stream instanceof KnownLength) {
                int size = stream.available();
                buf = new byte[size];
                int at = 0;
                while (at < size) {
                    int n = stream.read(buf, at, size - at);
                    if (n < 0) {
                        throw new IOException("message ended after " + at + " of " + size + " bytes");
                    }
                    at += n;
                }
            } else {
                buf = stream.readAllBytes();
            }
            // Aliasing takes effect only on a buffer the decoder knows to be immutable: newInstance(byte[])
            // says it is not, and every bytes field would be copied again. Nothing else holds buf.
            CodedInputStream in = UnsafeByteOperations.unsafeWrap(buf).newCodedInput();
            in.enableAliasing(true);
            T message = parser.parseFrom(in, ExtensionRegistryLite.getEmptyRegistry());
            in.checkLastTagWas(0);
            return message;
        } catch (InvalidProtocolBufferException e) {
            throw Status.INTERNAL
                    .withDescription("malformed protobuf message: " + e.getMessage())
                    .withCause(e)
                    .asRuntimeException();
        } catch (IOException e) {
            throw Status.INTERNAL
                    .withDescription("cannot read message: " + e.getMessage())
                    .withCause(e)
                    .asRuntimeException();
        }
    }
}
