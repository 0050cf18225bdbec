package dev.ferry.cluster.client;

import com.google.protobuf.ByteString;
import dev.ferry.proto.agent.ConsoleOutput;
import dev.ferry.proto.agent.ConsoleRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;

/**
 * Follows a VM's console through the coordinator, from host to host: one stream per owner, and
 * when a stream ends (the VM left, or stopped) or the owner cannot be reached, a new one from
 * where the {@link ConsoleCursor} is. Runs until {@link #close()}, or, with {@code historyOnly},
 * until the history up to now has been printed.
 *
 * <p>The state machine, per stream: OPENING (open request sent) → STREAMING (output relayed to
 * the sink) → ENDED (the agent said why: "history" stops the follower, anything else reattaches)
 * or FAILED (UNAVAILABLE and FAILED_PRECONDITION: the VM is between hosts or not running, retried
 * every {@code retryMs}; any other status ends the follower with that error).
 */
public final class ConsoleFollower implements AutoCloseable {
    /** Where the console goes: the guest's bytes, and Ferry's own notes (a terminal's stderr). */
    public interface Sink {
        void output(byte[] data);

        void note(String line);
    }

    private final CoordinatorClient client;
    private final String vm;
    private final int tailLines;
    private final long sinceUnixMs;
    private final boolean write;
    private final boolean historyOnly;
    private final Sink sink;
    private final ConsoleCursor cursor = new ConsoleCursor();
    private final long retryMs;
    private volatile StreamObserver<ConsoleRequest> current;
    private volatile CompletableFuture<String> currentEnd;
    private volatile boolean closed;

    public ConsoleFollower(
            CoordinatorClient client, String vm, int tailLines, boolean write, boolean historyOnly, Sink sink) {
        this(client, vm, tailLines, 0, write, historyOnly, sink, 500);
    }

    /** With {@code sinceUnixMs} above 0: the history printed since then first, instead of the last {@code tailLines}. */
    public ConsoleFollower(
            CoordinatorClient client,
            String vm,
            int tailLines,
            long sinceUnixMs,
            boolean write,
            boolean historyOnly,
            Sink sink) {
        this(client, vm, tailLines, sinceUnixMs, write, historyOnly, sink, 500);
    }

    ConsoleFollower(
            CoordinatorClient client,
            String vm,
            int tailLines,
            long sinceUnixMs,
            boolean write,
            boolean historyOnly,
            Sink sink,
            long retryMs) {
        this.client = client;
        this.vm = vm;
        this.tailLines = tailLines;
        this.sinceUnixMs = sinceUnixMs;
        this.write = write;
        this.historyOnly = historyOnly;
        this.sink = sink;
        this.retryMs = retryMs;
    }

    /** Blocks until closed (or, with historyOnly, the history is printed); throws on a lasting error. */
    public void run() throws InterruptedException {
        boolean waitingNoted = false;
        while (!closed) {
            CompletableFuture<String> end = new CompletableFuture<>();
            currentEnd = end;
            StreamObserver<ConsoleRequest> requests = client.console(new Output(end));
            current = requests;
            requests.onNext(ConsoleRequest.newBuilder()
                    .setOpen(cursor.open(vm, tailLines, sinceUnixMs, write, historyOnly))
                    .build());
            try {
                String why = end.get();
                waitingNoted = false;
                if ("history".equals(why) || closed) {
                    return;
                }
                Thread.sleep(
                        Math.min(retryMs, 100)); // the owner's record changes at the commit, before the source closes
            } catch (ExecutionException e) {
                StatusRuntimeException s = e.getCause() instanceof StatusRuntimeException sre
                        ? sre
                        : Status.fromThrowable(e.getCause()).asRuntimeException();
                if (closed) {
                    return;
                }
                Status.Code code = s.getStatus().getCode();
                if (code != Status.Code.UNAVAILABLE && code != Status.Code.FAILED_PRECONDITION) {
                    throw client.explain(s);
                }
                if (historyOnly && code == Status.Code.FAILED_PRECONDITION) {
                    throw client.explain(s);
                }
                client.redirect(s);
                if (!waitingNoted) {
                    sink.note("-- waiting: " + client.explain(s).getMessage());
                    waitingNoted = true;
                }
                Thread.sleep(retryMs);
            } finally {
                current = null;
            }
        }
    }

    /** Sends input to the guest; dropped (with false) between two streams. */
    public boolean input(byte[] data) {
        StreamObserver<ConsoleRequest> c = current;
        if (c == null || closed) {
            return false;
        }
        synchronized (this) {
            c.onNext(ConsoleRequest.newBuilder()
                    .setInput(ByteString.copyFrom(data))
                    .build());
        }
        return true;
    }

    public ConsoleCursor cursor() {
        return cursor;
    }

    @Override
    public void close() {
        closed = true;
        StreamObserver<ConsoleRequest> c = current;
        if (c != null) {
            try {
                c.onError(Status.CANCELLED.withDescription("detached").asRuntimeException());
            } catch (RuntimeException e) {
                // already ended
            }
        }
        CompletableFuture<String> end = currentEnd;
        if (end != null) {
            end.complete("detached");
        }
    }

    private final class Output implements StreamObserver<ConsoleOutput> {
        private final CompletableFuture<String> end;
        private String ended;

        Output(CompletableFuture<String> end) {
            this.end = end;
        }

        @Override
        public void onNext(ConsoleOutput o) {
            ConsoleCursor.Step step;
            synchronized (cursor) {
                step = cursor.accept(o);
            }
            step.notes().forEach(sink::note);
            if (step.data().length > 0) {
                sink.output(step.data());
            }
            if (step.ended() != null) {
                ended = step.ended();
            }
        }

        @Override
        public void onError(Throwable t) {
            end.completeExceptionally(t);
        }

        @Override
        public void onCompleted() {
            end.complete(ended == null ? "ended" : ended);
        }
    }
}
