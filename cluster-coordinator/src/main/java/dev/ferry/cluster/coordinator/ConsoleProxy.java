package dev.ferry.cluster.coordinator;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.agent.ConsoleOutput;
import dev.ferry.proto.agent.ConsoleRequest;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.rpc.Callers;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.function.Supplier;

/**
 * {@code Coordinator.Console}: one client's console stream, relayed to the agent that owns the VM
 * (clients never reach agents; agents take console streams only from coordinators).
 *
 * <p>Backpressure end to end, with nothing buffered here: the agent's stream is read one message
 * at a time, the next asked for only once the client's stream is ready again, so a slow client
 * slows only its own agent stream, which reads the VM's history file at the client's pace (the
 * agent's {@code ConsoleService}: a client more than the history behind is told what it missed).
 *
 * <p>One proxy serves one owner: when the VM leaves that host the agent ends the stream, and the
 * client opens a new one from where it was (its generation and offset); this replica then finds
 * the new owner.
 */
final class ConsoleProxy implements StreamObserver<ConsoleRequest> {
    private final Supplier<Term> leader;
    private final AgentActions agents;
    private final ServerCallStreamObserver<ConsoleOutput> client;
    private final Object lock = new Object();
    private StreamObserver<ConsoleRequest> agent;
    private ClientCallStreamObserver<ConsoleRequest> agentCall;
    private boolean waitingForClient;
    private boolean done;

    ConsoleProxy(Supplier<Term> leader, AgentActions agents, StreamObserver<ConsoleOutput> client) {
        this.leader = leader;
        this.agents = agents;
        this.client = (ServerCallStreamObserver<ConsoleOutput>) client;
        this.client.setOnReadyHandler(this::clientReady);
        this.client.setOnCancelHandler(() -> cancelAgent("the client left"));
    }

    @Override
    public void onNext(ConsoleRequest req) {
        try {
            synchronized (lock) {
                if (done) {
                    return;
                }
                if (agent == null) {
                    if (!req.hasOpen()) {
                        throw Status.INVALID_ARGUMENT
                                .withDescription("the first console request must open it")
                                .asRuntimeException();
                    }
                    open(req);
                    return;
                }
                if (req.hasOpen()) {
                    throw Status.INVALID_ARGUMENT
                            .withDescription("the console is already open")
                            .asRuntimeException();
                }
                agent.onNext(req);
            }
        } catch (StatusRuntimeException e) {
            failClient(e); // with its trailers: "not the leader" names the leader
        } catch (AgentCallException e) {
            failClient(Status.fromCode(e.code()).withDescription(e.getMessage()).asRuntimeException());
        }
    }

    private void open(ConsoleRequest req) {
        var open = req.getOpen();
        if (open.getWrite() && !CoordinatorAccess.mayWriteConsole(Callers.current())) {
            throw Status.PERMISSION_DENIED
                    .withDescription("only operators may write to a console; "
                            + Callers.current().map(Object::toString).orElse("the caller")
                            + " may follow it (--follow)")
                    .asRuntimeException();
        }
        Term t = leader.get();
        Versioned<VmRecord> v = t.view.vm(open.getVm());
        if (v == null) {
            CoordinatorException e = CoordinatorException.noVm(open.getVm());
            throw Status.fromCode(e.code()).withDescription(e.getMessage()).asRuntimeException();
        }
        VmRecord r = v.value();
        if (r.getOwner().isEmpty()) {
            throw Status.FAILED_PRECONDITION
                    .withDescription("VM " + open.getVm() + " runs nowhere (" + r.getPhase() + ")")
                    .asRuntimeException();
        }
        HostRecord host = t.view.hostRecord(r.getOwner());
        if (host == null) {
            throw Status.UNAVAILABLE
                    .withDescription("VM " + open.getVm() + "'s host " + r.getOwner() + " is not alive")
                    .asRuntimeException();
        }
        agent = agents.console(host, new FromAgent());
        client.onNext(ConsoleOutput.newBuilder()
                .setHost(r.getOwner())
                .setEpoch(r.getEpoch())
                .build());
        agent.onNext(req);
    }

    private void clientReady() {
        synchronized (lock) {
            if (waitingForClient && client.isReady() && agentCall != null) {
                waitingForClient = false;
                agentCall.request(1);
            }
        }
    }

    private void failClient(StatusRuntimeException s) {
        synchronized (lock) {
            if (done) {
                return;
            }
            done = true;
            try {
                client.onError(s);
            } catch (RuntimeException e) {
                // the client is gone already
            }
        }
        cancelAgent(s.getStatus().getDescription());
    }

    private void cancelAgent(String why) {
        ClientCallStreamObserver<ConsoleRequest> c;
        synchronized (lock) {
            done = true;
            c = agentCall;
        }
        if (c != null) {
            c.cancel(why, null);
        }
    }

    @Override
    public void onError(Throwable t) {
        cancelAgent("the client's stream failed");
    }

    @Override
    public void onCompleted() {
        synchronized (lock) {
            if (agent != null && !done) {
                agent.onCompleted();
            }
        }
    }

    /** The agent's side: each output relayed, the next asked for when the client can take it. */
    private final class FromAgent implements ClientResponseObserver<ConsoleRequest, ConsoleOutput> {
        @Override
        public void beforeStart(ClientCallStreamObserver<ConsoleRequest> call) {
            synchronized (lock) {
                agentCall = call;
            }
            call.disableAutoRequestWithInitial(1);
        }

        @Override
        public void onNext(ConsoleOutput o) {
            synchronized (lock) {
                if (done) {
                    return;
                }
                client.onNext(o);
                if (client.isReady()) {
                    agentCall.request(1);
                } else {
                    waitingForClient = true;
                }
            }
        }

        @Override
        public void onError(Throwable t) {
            Status s = Status.fromThrowable(t);
            if (s.getCode() == Status.Code.NOT_FOUND) {
                // The VM is not (or no longer, or not yet) on the host its record names: it is moving.
                // UNAVAILABLE tells the client to ask again, where NOT_FOUND would mean no such VM.
                s = Status.UNAVAILABLE.withDescription(s.getDescription());
            }
            failClient(s.asRuntimeException());
        }

        @Override
        public void onCompleted() {
            synchronized (lock) {
                if (done) {
                    return;
                }
                done = true;
                client.onCompleted();
            }
        }
    }
}
