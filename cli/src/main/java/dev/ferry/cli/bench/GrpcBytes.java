package dev.ferry.cli.bench;

import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.memory.RamFile;
import dev.ferry.pki.Role;
import dev.ferry.rpc.AccessPolicy;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.PeerRequirement;
import dev.ferry.rpc.Transport;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

/**
 * The gRPC floor of the benchmark: guest memory moved as plain 1 MiB byte messages on one
 * client-streaming call through {@link Transport} (same windows, same buffers, same flow control
 * as a migration lane), into a fresh RAM file, with none of Ferry's own work (no batches, zero
 * scan, checksum or compression). The gap between this and raw TCP is what HTTP/2 and gRPC cost
 * on the machine. It is a reference, not a strict bound: its sender reads and sends in turn on one
 * thread, while Ferry's lanes overlap the two, so Ferry can come out ahead of it.
 */
final class GrpcBytes {
    private static final int CHUNK = 1 << 20;

    private static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
            return new Bytes(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
            try {
                return stream.readAllBytes();
            } catch (IOException e) {
                throw Status.INTERNAL.withDescription(e.getMessage()).asRuntimeException();
            }
        }
    };

    /** Tells gRPC the length up front and writes straight into its buffers, as protobuf messages do. */
    private static final class Bytes extends ByteArrayInputStream implements io.grpc.KnownLength, io.grpc.Drainable {
        Bytes(byte[] value) {
            super(value);
        }

        @Override
        public int drainTo(java.io.OutputStream target) throws IOException {
            int n = count - pos;
            target.write(buf, pos, n);
            pos = count;
            return n;
        }
    }

    static final MethodDescriptor<byte[], byte[]> PUSH = MethodDescriptor.<byte[], byte[]>newBuilder()
            .setType(MethodDescriptor.MethodType.CLIENT_STREAMING)
            .setFullMethodName("ferry.bench.Sink/Push")
            .setRequestMarshaller(BYTES)
            .setResponseMarshaller(BYTES)
            .build();

    private GrpcBytes() {}

    /** Serves Push: the first message is the size (8 bytes), then data in order into a fresh RAM file. */
    static Server serve(Path ramDir) throws IOException {
        AtomicInteger transfers = new AtomicInteger();
        ServerServiceDefinition def = ServerServiceDefinition.builder("ferry.bench.Sink")
                .addMethod(PUSH, ServerCalls.asyncClientStreamingCall(response -> {
                    ServerCallStreamObserver<byte[]> out = (ServerCallStreamObserver<byte[]>) response;
                    out.disableAutoRequest();
                    out.request(2);
                    return new StreamObserver<>() {
                        RamFile ram;
                        long at;

                        @Override
                        public void onNext(byte[] m) {
                            try {
                                if (ram == null) {
                                    ram = RamFile.create(
                                            ramDir.resolve("grpc-" + transfers.getAndIncrement() + ".ram"),
                                            ByteBuffer.wrap(m).getLong());
                                } else {
                                    ram.write(at, MemorySegment.ofArray(m));
                                    at += m.length;
                                }
                                out.request(1);
                            } catch (IOException | HypervisorException e) {
                                out.onError(Status.INTERNAL
                                        .withDescription(e.getMessage())
                                        .asRuntimeException());
                            }
                        }

                        @Override
                        public void onError(Throwable t) {
                            close();
                        }

                        @Override
                        public void onCompleted() {
                            boolean whole = ram != null && at == ram.sizeBytes();
                            close();
                            if (whole) {
                                out.onNext(new byte[] {1});
                                out.onCompleted();
                            } else {
                                out.onError(Status.DATA_LOSS
                                        .withDescription("short transfer")
                                        .asRuntimeException());
                            }
                        }

                        private void close() {
                            if (ram != null) {
                                ram.close();
                            }
                        }
                    };
                }))
                .build();
        return Transport.plaintext()
                .startServer(
                        new Endpoint.Tcp("127.0.0.1", 0),
                        Executors.newVirtualThreadPerTaskExecutor(),
                        List.of(def),
                        // The floor is plaintext gRPC; the policy only has to name the method.
                        AccessPolicy.builder().allow(PUSH, Role.AGENT).build());
    }

    /** Sends all of {@code memory} (pread into a fresh array per message, as Ferry's sender does). */
    static void send(Endpoint.Tcp to, GuestMemory memory) throws IOException {
        ManagedChannel channel = Transport.plaintext().channel(to, PeerRequirement.agent("bench-sink"));
        try {
            CompletableFuture<byte[]> reply = new CompletableFuture<>();
            Thread sender = Thread.currentThread();
            @SuppressWarnings("unchecked")
            ClientCallStreamObserver<byte[]>[] out = new ClientCallStreamObserver[1];
            ClientCalls.asyncClientStreamingCall(
                    channel.newCall(PUSH, CallOptions.DEFAULT), new ClientResponseObserver<byte[], byte[]>() {
                        @Override
                        public void beforeStart(ClientCallStreamObserver<byte[]> requestStream) {
                            out[0] = requestStream;
                            requestStream.setOnReadyHandler(() -> LockSupport.unpark(sender));
                        }

                        @Override
                        public void onNext(byte[] value) {
                            reply.complete(value);
                        }

                        @Override
                        public void onError(Throwable t) {
                            reply.completeExceptionally(t);
                            LockSupport.unpark(sender);
                        }

                        @Override
                        public void onCompleted() {}
                    });
            out[0].onNext(ByteBuffer.allocate(8).putLong(0, memory.sizeBytes()).array());
            for (long at = 0; at < memory.sizeBytes(); at += CHUNK) {
                byte[] data = new byte[(int) Math.min(CHUNK, memory.sizeBytes() - at)];
                memory.read(at, MemorySegment.ofArray(data));
                while (!out[0].isReady()) {
                    if (reply.isCompletedExceptionally()) {
                        throw new IOException("gRPC sink failed: " + reply.exceptionNow());
                    }
                    LockSupport.parkNanos(10_000_000);
                }
                out[0].onNext(data);
            }
            out[0].onCompleted();
            reply.get(60, TimeUnit.SECONDS);
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            throw new IOException("gRPC sink did not confirm the transfer: " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        } finally {
            channel.shutdownNow();
        }
    }
}
