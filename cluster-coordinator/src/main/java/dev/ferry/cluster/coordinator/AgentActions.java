package dev.ferry.cluster.coordinator;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.proto.agent.CancelMigrationRequest;
import dev.ferry.proto.agent.CancelMigrationResponse;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.LeaderTermRequest;
import dev.ferry.proto.agent.LeaderTermResponse;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.SetMigrationLimitsRequest;
import dev.ferry.proto.agent.SetMigrationLimitsResponse;
import dev.ferry.proto.agent.VmRequest;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.vm.VmStatus;
import java.io.Closeable;
import java.util.List;
import java.util.function.Consumer;

/**
 * What the coordinator asks of agents, addressed by their registration. Production calls each
 * agent's control API over gRPC ({@link GrpcAgentActions}); the coordinator benchmark plugs in
 * agents simulated on ZooKeeper. Every call fails with {@link AgentCallException}.
 *
 * <p>Requests that change an agent's VMs carry the leader's term ({@code leader_term}); a leader
 * sends them through {@link LeaderOrders}, which sets it on every one.
 */
public interface AgentActions extends Closeable {
    VmStatus createVm(HostRecord host, CreateVmRequest request) throws AgentCallException;

    VmStatus startVm(HostRecord host, VmRequest request) throws AgentCallException;

    VmStatus stopVm(HostRecord host, VmRequest request) throws AgentCallException;

    VmStatus deleteVm(HostRecord host, VmRequest request) throws AgentCallException;

    VmStatus getVm(HostRecord host, String vm) throws AgentCallException;

    List<VmStatus> listVms(HostRecord host) throws AgentCallException;

    /** Runs a migration on the source agent; every event goes to {@code events}; returns the last. */
    MigrationEvent migrate(HostRecord source, MigrateRequest request, Consumer<MigrationEvent> events)
            throws AgentCallException;

    CancelMigrationResponse cancelMigration(HostRecord source, CancelMigrationRequest request)
            throws AgentCallException;

    SetMigrationLimitsResponse setMigrationLimits(HostRecord source, SetMigrationLimitsRequest request)
            throws AgentCallException;

    /** The records of {@code host}'s outgoing migrations (`ferry report`); simulated agents keep none. */
    default List<dev.ferry.proto.agent.MigrationRecord> migrationRecords(
            HostRecord host, dev.ferry.proto.agent.MigrationRecordsRequest request) throws AgentCallException {
        return List.of();
    }

    /** Tells an agent that a leader took office with {@code request}'s term. */
    LeaderTermResponse announceLeaderTerm(HostRecord host, LeaderTermRequest request) throws AgentCallException;

    /**
     * Opens the owner agent's console stream for a client of the coordinator (the proxy of {@code
     * Coordinator.Console}); where agents are simulated there is none.
     */
    default io.grpc.stub.StreamObserver<dev.ferry.proto.agent.ConsoleRequest> console(
            HostRecord host, io.grpc.stub.StreamObserver<dev.ferry.proto.agent.ConsoleOutput> out)
            throws AgentCallException {
        throw new AgentCallException(
                io.grpc.Status.Code.UNIMPLEMENTED, "host " + host.getHostId() + " has no console service", null);
    }

    @Override
    void close();
}
