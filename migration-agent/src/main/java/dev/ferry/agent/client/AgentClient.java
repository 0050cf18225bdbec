package dev.ferry.agent.client;

import dev.ferry.agent.AgentControlRpc;
import dev.ferry.proto.agent.AgentInfo;
import dev.ferry.proto.agent.AgentInfoRequest;
import dev.ferry.proto.agent.CancelMigrationRequest;
import dev.ferry.proto.agent.CancelMigrationResponse;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.LeaderTermRequest;
import dev.ferry.proto.agent.LeaderTermResponse;
import dev.ferry.proto.agent.ListVmsRequest;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.agent.PrepareIncomingResponse;
import dev.ferry.proto.agent.SetMigrationLimitsRequest;
import dev.ferry.proto.agent.SetMigrationLimitsResponse;
import dev.ferry.proto.agent.VmRequest;
import dev.ferry.proto.vm.VmStatus;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.PeerRequirement;
import dev.ferry.rpc.Transport;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/** A client of one agent's control API. Errors become {@link AgentCallException} with one clear line. */
public final class AgentClient implements AutoCloseable {
    private final String name;
    private final Endpoint endpoint;
    private final ManagedChannel channel;
    private final Duration deadline;

    public AgentClient(Transport transport, String name, Endpoint endpoint, Duration deadline) {
        this.name = name;
        this.endpoint = endpoint;
        this.channel = transport.channel(endpoint, PeerRequirement.agent(name));
        this.deadline = deadline;
    }

    public String name() {
        return name;
    }

    public Endpoint endpoint() {
        return endpoint;
    }

    private CallOptions options() {
        return CallOptions.DEFAULT.withDeadlineAfter(deadline.toMillis(), TimeUnit.MILLISECONDS);
    }

    private <Q, R> R unary(MethodDescriptor<Q, R> method, Q request) {
        try {
            return ClientCalls.blockingUnaryCall(channel, method, options(), request);
        } catch (StatusRuntimeException e) {
            throw translate(e);
        }
    }

    public AgentCallException translate(StatusRuntimeException e) {
        Status s = e.getStatus();
        String what = switch (s.getCode()) {
            case UNAVAILABLE ->
                dev.ferry.rpc.TlsFailure.explain(e, "agent " + name + " at " + endpoint)
                        .orElse("agent " + name + " at " + endpoint + " is unreachable"
                                + (s.getDescription() == null ? "" : " (" + s.getDescription() + ")"));
            case DEADLINE_EXCEEDED ->
                "agent " + name + " at " + endpoint + " did not answer within " + deadline.toSeconds() + " s";
            default ->
                s.getDescription() != null ? s.getDescription() : s.getCode().toString();
        };
        return new AgentCallException(s.getCode(), what, e);
    }

    public AgentInfo info() {
        return unary(AgentControlRpc.GET_AGENT_INFO, AgentInfoRequest.getDefaultInstance());
    }

    public VmStatus createVm(CreateVmRequest request) {
        return unary(AgentControlRpc.CREATE_VM, request);
    }

    public VmStatus startVm(String vm) {
        return startVm(VmRequest.newBuilder().setName(vm).build());
    }

    public VmStatus stopVm(String vm) {
        return stopVm(VmRequest.newBuilder().setName(vm).build());
    }

    public VmStatus deleteVm(String vm) {
        return deleteVm(VmRequest.newBuilder().setName(vm).build());
    }

    /** With a request id: a retry of the same request runs once. */
    public VmStatus startVm(VmRequest request) {
        return unary(AgentControlRpc.START_VM, request);
    }

    public VmStatus stopVm(VmRequest request) {
        return unary(AgentControlRpc.STOP_VM, request);
    }

    public VmStatus deleteVm(VmRequest request) {
        return unary(AgentControlRpc.DELETE_VM, request);
    }

    public VmStatus getVm(String vm) {
        return unary(AgentControlRpc.GET_VM, VmRequest.newBuilder().setName(vm).build());
    }

    public List<VmStatus> listVms() {
        return unary(AgentControlRpc.LIST_VMS, ListVmsRequest.getDefaultInstance())
                .getVmsList();
    }

    public PrepareIncomingResponse prepareIncoming(PrepareIncomingRequest request) {
        return unary(AgentControlRpc.PREPARE_INCOMING, request);
    }

    public CancelMigrationResponse cancelMigration(String vm) {
        return cancelMigration(CancelMigrationRequest.newBuilder().setVm(vm).build());
    }

    /** Cancels the outgoing migration of {@code request.vm} (with the coordinator leader's term, in a cluster). */
    public CancelMigrationResponse cancelMigration(CancelMigrationRequest request) {
        return unary(AgentControlRpc.CANCEL_MIGRATION, request);
    }

    /** Changes the limits of {@code request.vm}'s outgoing migration while it runs. */
    public SetMigrationLimitsResponse setMigrationLimits(SetMigrationLimitsRequest request) {
        return unary(AgentControlRpc.SET_MIGRATION_LIMITS, request);
    }

    /** The records of the agent's outgoing migrations (see MigrationRecordsRequest). */
    public java.util.List<dev.ferry.proto.agent.MigrationRecord> migrationRecords(
            dev.ferry.proto.agent.MigrationRecordsRequest request) {
        return unary(AgentControlRpc.GET_MIGRATION_RECORDS, request).getRecordsList();
    }

    /** Tells the agent a coordinator leader took office with this term. */
    public LeaderTermResponse announceLeaderTerm(LeaderTermRequest request) {
        return unary(AgentControlRpc.ANNOUNCE_LEADER_TERM, request);
    }

    /** Asks a destination agent to discard an incoming migration it prepared. */
    public CancelMigrationResponse cancelIncoming(String vm, String migrationId, String reason) {
        return unary(
                AgentControlRpc.CANCEL_MIGRATION,
                CancelMigrationRequest.newBuilder()
                        .setVm(vm)
                        .setMigrationId(migrationId)
                        .setReason(reason)
                        .build());
    }

    /**
     * Opens the agent's console stream: the returned observer takes the open request and then
     * input; {@code out} gets the output (flow-controlled by {@code out}'s {@code beforeStart}).
     * No deadline: a console is followed for as long as the caller likes.
     */
    public io.grpc.stub.StreamObserver<dev.ferry.proto.agent.ConsoleRequest> console(
            io.grpc.stub.StreamObserver<dev.ferry.proto.agent.ConsoleOutput> out) {
        return ClientCalls.asyncBidiStreamingCall(channel.newCall(AgentControlRpc.CONSOLE, CallOptions.DEFAULT), out);
    }

    /**
     * Runs a migration on this (source) agent, delivering every progress event to {@code events};
     * returns the terminal event. No deadline: a migration takes as long as it takes.
     */
    public MigrationEvent migrate(MigrateRequest request, Consumer<MigrationEvent> events) {
        MigrationEvent last = null;
        try {
            Iterator<MigrationEvent> it = ClientCalls.blockingServerStreamingCall(
                    channel, AgentControlRpc.MIGRATE, CallOptions.DEFAULT, request);
            while (it.hasNext()) {
                last = it.next();
                events.accept(last);
            }
        } catch (StatusRuntimeException e) {
            throw translate(e);
        }
        if (last == null || !last.hasSummary()) {
            throw new AgentCallException(
                    Status.Code.INTERNAL, "agent " + name + " ended the migration without a result", null);
        }
        return last;
    }

    @Override
    public void close() {
        channel.shutdownNow();
        try {
            channel.awaitTermination(2, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
