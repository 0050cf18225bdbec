package dev.ferry.rpc;

import com.google.protobuf.Descriptors;
import com.google.protobuf.Message;
import io.grpc.MethodDescriptor;
import io.grpc.MethodDescriptor.MethodType;
import io.grpc.ServerServiceDefinition;
import io.grpc.ServiceDescriptor;
import io.grpc.protobuf.ProtoMethodDescriptorSupplier;
import io.grpc.protobuf.ProtoServiceDescriptorSupplier;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BiConsumer;
import java.util.function.Function;

/**
 * gRPC method and service definitions derived from a protobuf service descriptor.
 *
 * <p>This replaces the code protoc-gen-grpc-java would generate (that plugin is not available
 * to this build): the wire names, streaming kinds and message types all come from the
 * {@code .proto} file, so a method cannot be bound with the wrong shape. Servers bind handlers
 * with {@link #bind()}, which refuses a missing, unknown or mis-shaped method; clients look
 * methods up with {@link #method}.
 */
public final class GrpcService {
    private final Descriptors.ServiceDescriptor proto;
    private final Map<String, MethodDescriptor<Message, Message>> methods;
    private final ServiceDescriptor grpcDescriptor;

    private GrpcService(Descriptors.ServiceDescriptor proto) {
        this.proto = proto;
        Map<String, MethodDescriptor<Message, Message>> byName = new LinkedHashMap<>();
        ServiceDescriptor.Builder service =
                ServiceDescriptor.newBuilder(proto.getFullName()).setSchemaDescriptor(new SchemaSupplier(proto, null));
        for (Descriptors.MethodDescriptor m : proto.getMethods()) {
            MethodDescriptor<Message, Message> md = MethodDescriptor.<Message, Message>newBuilder()
                    .setType(typeOf(m))
                    .setFullMethodName(MethodDescriptor.generateFullMethodName(proto.getFullName(), m.getName()))
                    .setRequestMarshaller(new AliasingMarshaller<>(MessageTypes.defaultInstance(m.getInputType())))
                    .setResponseMarshaller(new AliasingMarshaller<>(MessageTypes.defaultInstance(m.getOutputType())))
                    .setSchemaDescriptor(new SchemaSupplier(proto, m.getName()))
                    .build();
            byName.put(m.getName(), md);
            service.addMethod(md);
        }
        this.methods = Collections.unmodifiableMap(byName);
        this.grpcDescriptor = service.build();
    }

    /** Builds the definitions of one service of a {@code .proto} file. */
    public static GrpcService of(Descriptors.FileDescriptor file, String serviceName) {
        Descriptors.ServiceDescriptor sd = file.findServiceByName(serviceName);
        if (sd == null) {
            throw new IllegalArgumentException("no service " + serviceName + " in " + file.getName());
        }
        return new GrpcService(sd);
    }

    public static GrpcService of(Descriptors.ServiceDescriptor service) {
        return new GrpcService(service);
    }

    public String fullName() {
        return proto.getFullName();
    }

    public ServiceDescriptor descriptor() {
        return grpcDescriptor;
    }

    /** The full gRPC name of method {@code name} ("pkg.Service/Method"); fails if there is none. */
    public String fullMethodName(String name) {
        MethodDescriptor<Message, Message> md = methods.get(name);
        if (md == null) {
            throw new IllegalArgumentException("service " + fullName() + " has no method " + name);
        }
        return md.getFullMethodName();
    }

    /**
     * The client-side descriptor of one method, typed. Fails if the method does not exist or its
     * request or response type is not the one the caller expects.
     */
    @SuppressWarnings("unchecked")
    public <Req extends Message, Resp extends Message> MethodDescriptor<Req, Resp> method(
            String name, Class<Req> request, Class<Resp> response) {
        MethodDescriptor<Message, Message> md = methods.get(name);
        if (md == null) {
            throw new IllegalArgumentException("service " + fullName() + " has no method " + name);
        }
        Descriptors.MethodDescriptor m = proto.findMethodByName(name);
        checkType(name, "request", m.getInputType(), request);
        checkType(name, "response", m.getOutputType(), response);
        return (MethodDescriptor<Req, Resp>) (MethodDescriptor<?, ?>) md;
    }

    public Binder bind() {
        return new Binder();
    }

    private static void checkType(String method, String what, Descriptors.Descriptor expected, Class<?> actual) {
        Class<?> declared = MessageTypes.defaultInstance(expected).getClass();
        if (!declared.equals(actual)) {
            throw new IllegalArgumentException(
                    method + " " + what + " is " + declared.getName() + ", not " + actual.getName());
        }
    }

    private static MethodType typeOf(Descriptors.MethodDescriptor m) {
        if (m.isClientStreaming() && m.isServerStreaming()) {
            return MethodType.BIDI_STREAMING;
        }
        if (m.isClientStreaming()) {
            return MethodType.CLIENT_STREAMING;
        }
        if (m.isServerStreaming()) {
            return MethodType.SERVER_STREAMING;
        }
        return MethodType.UNARY;
    }

    /**
     * Binds server handlers to the service's methods. {@link #build()} refuses a service with an
     * unbound method, so adding an rpc to a {@code .proto} file without implementing it fails at
     * server start, not at the first call.
     */
    public final class Binder {
        private final ServerServiceDefinition.Builder builder = ServerServiceDefinition.builder(grpcDescriptor);
        private final Map<String, Boolean> bound = new LinkedHashMap<>();

        private Binder() {}

        public <Req extends Message, Resp extends Message> Binder unary(
                String name, Class<Req> req, Class<Resp> resp, BiConsumer<Req, StreamObserver<Resp>> handler) {
            MethodDescriptor<Req, Resp> md = checked(name, req, resp, MethodType.UNARY);
            builder.addMethod(md, ServerCalls.asyncUnaryCall(handler::accept));
            return this;
        }

        public <Req extends Message, Resp extends Message> Binder serverStreaming(
                String name, Class<Req> req, Class<Resp> resp, BiConsumer<Req, StreamObserver<Resp>> handler) {
            MethodDescriptor<Req, Resp> md = checked(name, req, resp, MethodType.SERVER_STREAMING);
            builder.addMethod(md, ServerCalls.asyncServerStreamingCall(handler::accept));
            return this;
        }

        public <Req extends Message, Resp extends Message> Binder clientStreaming(
                String name,
                Class<Req> req,
                Class<Resp> resp,
                Function<StreamObserver<Resp>, StreamObserver<Req>> handler) {
            MethodDescriptor<Req, Resp> md = checked(name, req, resp, MethodType.CLIENT_STREAMING);
            builder.addMethod(md, ServerCalls.asyncClientStreamingCall(handler::apply));
            return this;
        }

        public <Req extends Message, Resp extends Message> Binder bidiStreaming(
                String name,
                Class<Req> req,
                Class<Resp> resp,
                Function<StreamObserver<Resp>, StreamObserver<Req>> handler) {
            MethodDescriptor<Req, Resp> md = checked(name, req, resp, MethodType.BIDI_STREAMING);
            builder.addMethod(md, ServerCalls.asyncBidiStreamingCall(handler::apply));
            return this;
        }

        public ServerServiceDefinition build() {
            for (String name : methods.keySet()) {
                if (!bound.containsKey(name)) {
                    throw new IllegalStateException("service " + fullName() + ": method " + name + " has no handler");
                }
            }
            return builder.build();
        }

        private <Req extends Message, Resp extends Message> MethodDescriptor<Req, Resp> checked(
                String name, Class<Req> req, Class<Resp> resp, MethodType kind) {
            MethodDescriptor<Req, Resp> md = method(name, req, resp);
            if (md.getType() != kind) {
                throw new IllegalArgumentException(
                        fullName() + "/" + name + " is " + md.getType() + ", bound as " + kind);
            }
            if (bound.putIfAbsent(name, Boolean.TRUE) != null) {
                throw new IllegalStateException(fullName() + "/" + name + " bound twice");
            }
            return md;
        }
    }

    /** Lets gRPC server reflection describe the service from its descriptor. */
    private record SchemaSupplier(Descriptors.ServiceDescriptor service, String methodName)
            implements ProtoServiceDescriptorSupplier, ProtoMethodDescriptorSupplier {
        @Override
        public Descriptors.FileDescriptor getFileDescriptor() {
            return service.getFile();
        }

        @Override
        public Descriptors.ServiceDescriptor getServiceDescriptor() {
            return service;
        }

        @Override
        public Descriptors.MethodDescriptor getMethodDescriptor() {
            return methodName == null ? null : service.findMethodByName(methodName);
        }
    }
}
