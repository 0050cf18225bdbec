package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.ferry.hypervisor.console.ConsoleHistory;
import dev.ferry.proto.agent.ConsoleOpen;
import dev.ferry.proto.agent.ConsoleOutput;
import dev.ferry.proto.agent.ConsoleRequest;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.inprocess.InProcessChannelBuilder;
import io.grpc.inprocess.InProcessServerBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The agent's console streams over real gRPC (in-process), against a real history on disk. */
class ConsoleServiceTest {
    @TempDir
    Path dir;

    private ConsoleHistory history;
    private final CopyOnWriteArrayList<String> typed = new CopyOnWriteArrayList<>();
    private Server server;
    private ManagedChannel channel;

    @BeforeEach
    void up() throws Exception {
        history = ConsoleHistory.open(dir, 4096);
        ConsoleService service = new ConsoleService(
                name -> {
                    if (!name.equals("g")) {
                        throw AgentException.notFound(name);
                    }
                    return new ConsoleService.Target(
                            history, data -> typed.add(new String(data, StandardCharsets.US_ASCII)));
                },
                "host-1",
                false);
        String name = "console-" + System.nanoTime();
        server = InProcessServerBuilder.forName(name)
                .addService(ServerServiceDefinition.builder(AgentControlRpc.SERVICE.fullName())
                        .addMethod(AgentControlRpc.CONSOLE, ServerCalls.asyncBidiStreamingCall(service::open))
                        .build())
                .build()
                .start();
        channel = InProcessChannelBuilder.forName(name).build();
    }

    @AfterEach
    void down() {
        channel.shutdownNow();
        server.shutdownNow();
        history.close();
    }

    /** A client that reads only when told to. */
    private static final class Client implements ClientResponseObserver<ConsoleRequest, ConsoleOutput> {
        final BlockingQueue<ConsoleOutput> got = new LinkedBlockingQueue<>();
        final BlockingQueue<Status> end = new LinkedBlockingQueue<>();
        ClientCallStreamObserver<ConsoleRequest> call;

        @Override
        public void beforeStart(ClientCallStreamObserver<ConsoleRequest> c) {
            call = c;
            c.disableAutoRequestWithInitial(1);
        }

        @Override
        public void onNext(ConsoleOutput o) {
            got.add(o);
        }

        @Override
        public void onError(Throwable t) {
            end.add(Status.fromThrowable(t));
        }

        @Override
        public void onCompleted() {
            end.add(Status.OK);
        }

        ConsoleOutput next() throws InterruptedException {
            ConsoleOutput o = got.poll(10, TimeUnit.SECONDS);
            assertNotNull(o, "no console output within 10 s");
            return o;
        }
    }

    private StreamObserver<ConsoleRequest> open(Client c, ConsoleOpen open) {
        StreamObserver<ConsoleRequest> req =
                ClientCalls.asyncBidiStreamingCall(channel.newCall(AgentControlRpc.CONSOLE, CallOptions.DEFAULT), c);
        req.onNext(ConsoleRequest.newBuilder().setOpen(open).build());
        return req;
    }

    @Test
    void aClientThatStopsReadingHoldsNothingUpAndLearnsWhatItMissed() throws Exception {
        Client c = new Client();
        open(c, ConsoleOpen.newBuilder().setVm("g").setTailLines(-1).build());
        assertTrue(c.next().getCaughtUp(), "an empty history: caught up at once");
        // The client reads nothing while the guest prints 200 KiB; the history keeps 8 KiB of it.
        byte[] line = ("x".repeat(1023) + "\n").getBytes(StandardCharsets.US_ASCII);
        for (int i = 0; i < 200; i++) {
            history.append(line);
        }
        assertTrue(history.end() - history.start() <= 2 * 4096 + line.length);
        c.call.request(Integer.MAX_VALUE);
        ByteArrayOutputStream received = new ByteArrayOutputStream();
        long skipped = 0;
        long at = 0;
        while (at < history.end()) {
            ConsoleOutput o = c.next();
            skipped += o.getSkipped();
            received.write(o.getData().toByteArray());
            at = o.getOffset() + o.getData().size();
        }
        assertTrue(skipped > 0, "the client was told it missed bytes");
        assertEquals(history.end(), skipped + received.size(), "every byte either received or reported missed");
        assertArrayEquals(history.read(history.start(), 1 << 20).data(), received.toByteArray());
    }

    @Test
    void aReattachFromAnOffsetGetsOnlyWhatFollowsIt() throws Exception {
        history.append("one\ntwo\nthree\n".getBytes(StandardCharsets.US_ASCII));
        Client c = new Client();
        open(
                c,
                ConsoleOpen.newBuilder()
                        .setVm("g")
                        .setGeneration(history.generation())
                        .setOffset(4)
                        .setHistoryOnly(true)
                        .build());
        c.call.request(100);
        ConsoleOutput o = c.next();
        assertEquals(4, o.getOffset());
        assertEquals("two\nthree\n", o.getData().toStringUtf8());
        assertEquals("history", c.next().getEnded());
        assertEquals(Status.Code.OK, c.end.poll(10, TimeUnit.SECONDS).getCode());
    }

    @Test
    void inputReachesTheGuestOnlyFromAWriterAndTheStreamEndsWhenTheConsoleCloses() throws Exception {
        Client writer = new Client();
        StreamObserver<ConsoleRequest> w =
                open(writer, ConsoleOpen.newBuilder().setVm("g").setWrite(true).build());
        writer.call.request(100);
        writer.next();
        w.onNext(ConsoleRequest.newBuilder()
                .setInput(ByteString.copyFromUtf8("ls\n"))
                .build());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (typed.isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(java.util.List.of("ls\n"), typed);

        Client follower = new Client();
        StreamObserver<ConsoleRequest> f =
                open(follower, ConsoleOpen.newBuilder().setVm("g").build());
        follower.call.request(100);
        follower.next();
        f.onNext(ConsoleRequest.newBuilder()
                .setInput(ByteString.copyFromUtf8("rm\n"))
                .build());
        assertEquals(
                Status.Code.PERMISSION_DENIED,
                follower.end.poll(10, TimeUnit.SECONDS).getCode());
        assertEquals(java.util.List.of("ls\n"), typed);

        history.close(); // the VM left this host
        ConsoleOutput last = writer.next();
        assertTrue(last.getEnded().contains("closed on host-1"), last.toString());
        assertEquals(Status.Code.OK, writer.end.poll(10, TimeUnit.SECONDS).getCode());
    }

    @Test
    void aVmThatIsNotHereIsNotFound() throws Exception {
        Client c = new Client();
        open(c, ConsoleOpen.newBuilder().setVm("other").build());
        assertEquals(Status.Code.NOT_FOUND, c.end.poll(10, TimeUnit.SECONDS).getCode());
    }
}
