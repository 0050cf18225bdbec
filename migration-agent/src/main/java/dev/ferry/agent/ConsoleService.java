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
 * the clients do. A client that falls further behind than the history keeps (2 MiB) loses the
 * trimmed bytes and is told how many ({@code skipped}), so neither the guest, the agent's memory
 * nor the other clients ever wait for it.
 */
final class ConsoleService {
    private static final Logger log = LoggerFactory.getLogger(ConsoleService.class);
    static final int CHUNK = 32 << 10;

    private final VmRegistry registry;
    private final boolean clustered;
    /** Sends run here, never on the guest's output thread (which only wakes sessions). */
    private final ExecutorService senders = Executors.newThreadPerTaskExecutor(
            Thread.ofVirtual().name("ferry-console-send-", 0).factory());

    ConsoleService(VmRegistry registry, boolean clustered) {
        this.registry = registry;
        this.clustered = clustered;
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
        private VmInstance vm;
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
            ManagedVm m = registry.get(open.getVm());
            vm = m.instance();
            if (vm == null || vm.console().isEmpty()) {
                throw new AgentException(
                        Status.Code.FAILED_PRECONDITION,
                        "VM " + open.getVm() + " has no console on " + registry.hostId() + " (not started?)");
            }
            history = vm.console().get();
            write = open.getWrite();
            historyOnly = open.getHistoryOnly();
            try {
                cursor = open.getGeneration().equals(history.generation())
                        ? Math.min(open.getOffset(), history.end())
                        : history.lineOffset(open.getTailLines());
            } catch (IOException e) {
                throw new AgentException(Status.Code.INTERNAL, "cannot read the console history: " + e.getMessage());
            }
            caughtUpAt = history.end();
            unsubscribe = history.subscribe(this::wake);
            wake();
        }

        private void input(byte[] data) throws AgentException {
            VmInstance v;
            synchronized (this) {
                if (history == null) {
                    throw new AgentException(Status.Code.INVALID_ARGUMENT, "console input before the open request");
                }
                if (!write) {
                    throw new AgentException(
                            Status.Code.PERMISSION_DENIED, "this console was opened to follow, not to write");
                }
                v = vm;
            }
            try {
                v.consoleInput(data);
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
                            finish("the console closed on " + registry.hostId() + " (the VM left or stopped)");
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
                log.debug("console of {}: {}", vm == null ? "?" : vm.spec().getName(), e.getMessage());
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
