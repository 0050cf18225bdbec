package dev.ferry.agent;

import com.google.protobuf.ByteString;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.console.ConsoleHistory;
import dev.ferry.pki.Role;
import dev.ferry.proto.agent.ConsoleOpen;
import dev.ferry.proto.agent.ConsoleOutput;
import dev.ferry.proto.agent.ConsoleRequest;
import dev.ferry.rpc.Callers;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.io.IOException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's end of {@code AgentControl.Console}: one session per client, reading the VM's
 * {@link ConsoleHistory} from its own cursor.
 *
 * <p>Backpressure: nothing is queued per client. A session sends while its gRPC stream is ready
 * and otherwise waits for the ready signal; the guest's output goes to the history file whatever
 * the clients do. A client that falls further behind than the history keeps (1 to 2 MiB) loses the
 * trimmed bytes and is told how many ({@code skipped}), so neither the guest, the agent's memory
 * nor the other clients ever wait for it.
 */
final class ConsoleService {
    private static final Logger log = LoggerFactory.getLogger(ConsoleService.class);
    static final int CHUNK = 32 << 10;

    /** A VM's console on this host: its history, and where its input goes. */
    record Target(ConsoleHistory history, Input input) {}

    interface Input {
        void write(byte[] data) throws HypervisorException;
    }

    /** Finds a VM's console here, or throws (NOT_FOUND: not on this host; FAILED_PRECONDITION: no console). */
    interface Lookup {
        Target find(String vm) throws AgentException;
    }

    private final Lookup lookup;
    private final String hostId;
    private final boolean clustered;
    /** Sends run here, never on the guest's output thread (which only wakes sessions). */
    private final ExecutorService senders = Executors.newThreadPerTaskExecutor(
            Thread.ofVirtual().name("ferry-console-send-", 0).factory());

    ConsoleService(Lookup lookup, String hostId, boolean clustered) {
        this.lookup = lookup;
        this.hostId = hostId;
        this.clustered = clustered;
    }

    /** The consoles of {@code registry}'s VMs. */
    static Lookup of(VmRegistry registry) {
        return name -> {
            VmInstance vm = registry.get(name).instance();
            ConsoleHistory h = vm == null ? null : vm.console().orElse(null);
            if (h == null) {
                throw new AgentException(
                        Status.Code.FAILED_PRECONDITION,
                        "VM " + name + " has no console on " + registry.hostId() + " (not started?)");
            }
            return new Target(h, vm::consoleInput);
        };
    }

    StreamObserver<ConsoleRequest> open(StreamObserver<ConsoleOutput> out) {
        ServerCallStreamObserver<ConsoleOutput> call = (ServerCallStreamObserver<ConsoleOutput>) out;
        Session s = new Session(call);
        call.setOnReadyHandler(s::wake);
        call.setOnCancelHandler(s::stop);
        return s;
    }

    /**
     * Who may write: in a cluster only the coordinator calls (it checked the operator behind it);
     * a standalone agent takes input from operators, never from viewers.
     */
    private boolean mayWrite() {
        if (clustered) {
            return Callers.current().isEmpty() || Callers.currentIs(Role.COORDINATOR);
        }
        return Callers.current().isEmpty() || Callers.currentIs(Role.OPERATOR);
    }

    private final class Session implements StreamObserver<ConsoleRequest> {
        private final ServerCallStreamObserver<ConsoleOutput> call;
        private final AtomicBoolean draining = new AtomicBoolean();
        private final AtomicBoolean again = new AtomicBoolean();
        private volatile boolean done;
        private String vm = "?";
        private Input input;
        private ConsoleHistory history;
        private volatile Runnable unsubscribe;
        private long cursor;
        private long caughtUpAt;
        private boolean caughtUpSent;
        private boolean historyOnly;
        private boolean write;

        Session(ServerCallStreamObserver<ConsoleOutput> call) {
            this.call = call;
        }

        @Override
        public void onNext(ConsoleRequest req) {
            try {
                switch (req.getBodyCase()) {
                    case OPEN -> attach(req.getOpen());
                    case INPUT -> input(req.getInput().toByteArray());
                    default -> throw new AgentException(Status.Code.INVALID_ARGUMENT, "an empty console request");
                }
            } catch (AgentException e) {
                fail(Status.fromCode(e.code()).withDescription(e.getMessage()));
            }
        }

        private synchronized void attach(ConsoleOpen open) throws AgentException {
            if (history != null) {
                throw new AgentException(Status.Code.INVALID_ARGUMENT, "the console is already open");
            }
            if (open.getWrite() && !mayWrite()) {
                throw new AgentException(Status.Code.PERMISSION_DENIED, "only operators may write to a console");
            }
            Target t = lookup.find(open.getVm());
            vm = open.getVm();
            input = t.input();
            history = t.history();
            write = open.getWrite();
            historyOnly = open.getHistoryOnly();
            try {
                if (open.getGeneration().equals(history.generation())) {
                    cursor = Math.min(open.getOffset(), history.end());
                } else if (open.getSinceUnixMs() > 0) {
                    cursor = history.sinceOffset(open.getSinceUnixMs());
                } else {
                    cursor = history.lineOffset(open.getTailLines());
                }
            } catch (IOException e) {
                throw new AgentException(Status.Code.INTERNAL, "cannot read the console history: " + e.getMessage());
            }
            caughtUpAt = history.end();
            unsubscribe = history.subscribe(this::wake);
            wake();
        }

        private void input(byte[] data) throws AgentException {
            Input in;
            synchronized (this) {
                if (history == null) {
                    throw new AgentException(Status.Code.INVALID_ARGUMENT, "console input before the open request");
                }
                if (!write) {
                    throw new AgentException(
                            Status.Code.PERMISSION_DENIED, "this console was opened to follow, not to write");
                }
                in = input;
            }
            try {
                in.write(data);
            } catch (HypervisorException e) {
                throw new AgentException(Status.Code.FAILED_PRECONDITION, e.getMessage());
            }
        }

        void wake() {
            if (done) {
                return;
            }
            again.set(true);
            if (draining.compareAndSet(false, true)) {
                senders.execute(this::drain);
            }
        }

        /** One drain at a time per session; a wake during a drain makes it look again. */
        private void drain() {
            try {
                while (again.getAndSet(false)) {
                    sendWhileReady();
                }
            } finally {
                draining.set(false);
            }
            if (again.get() && !done) {
                wake();
            }
        }

        private synchronized void sendWhileReady() {
            if (history == null || done) {
                return;
            }
            try {
                while (call.isReady() && !done) {
                    ConsoleHistory.Chunk c = history.read(cursor, CHUNK);
                    long skipped = c.offset() - cursor;
                    boolean nowCaughtUp = !caughtUpSent && c.end() >= caughtUpAt;
                    if (c.data().length == 0 && skipped == 0 && !nowCaughtUp) {
                        if (history.closed()) {
                            finish("the console closed on " + hostId + " (the VM left or stopped)");
                        }
                        return;
                    }
                    ConsoleOutput.Builder o = ConsoleOutput.newBuilder()
                            .setData(ByteString.copyFrom(c.data()))
                            .setOffset(c.offset())
                            .setGeneration(c.generation())
                            .setSkipped(Math.max(0, skipped));
                    if (nowCaughtUp) {
                        o.setCaughtUp(true);
                        caughtUpSent = true;
                    }
                    call.onNext(o.build());
                    cursor = c.end();
                    if (caughtUpSent && historyOnly) {
                        finish("history");
                        return;
                    }
                }
            } catch (IOException | RuntimeException e) {
                log.debug("console of {}: {}", vm, e.getMessage());
                fail(Status.UNAVAILABLE.withDescription("console read failed: " + e.getMessage()));
            }
        }

        private synchronized void finish(String why) {
            if (done) {
                return;
            }
            done = true;
            stop();
            call.onNext(ConsoleOutput.newBuilder().setEnded(why).build());
            call.onCompleted();
        }

        private synchronized void fail(Status status) {
            if (done) {
                return;
            }
            done = true;
            stop();
            try {
                call.onError(status.asRuntimeException());
            } catch (RuntimeException e) {
                // the call is already gone
            }
        }

        void stop() {
            done = true;
            Runnable u = unsubscribe;
            if (u != null) {
                u.run();
            }
        }

        @Override
        public void onError(Throwable t) {
            stop();
        }

        @Override
        public void onCompleted() {
            // The client has nothing more to type; it may still read.
        }
    }
}
