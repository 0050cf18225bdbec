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
import java.util.List;
import java.util.function.Consumer;

/**
 * A leader's calls to agents: every request that changes an agent's VMs carries this term, so
 * that an agent refuses it once it has seen a newer leader's (dev.ferry.agent.LeaderTerms). The
 * operations of a term reach agents only through this; reads pass as they are.
 */
final class LeaderOrders implements AgentActions {
    private final AgentActions agents;
    private final long term;

    LeaderOrders(AgentActions agents, long term) {
        this.agents = agents;
        this.term = term;
    }

    long term() {
        return term;
    }

    @Override
    public VmStatus createVm(HostRecord host, CreateVmRequest request) throws AgentCallException {
        return agents.createVm(host, request.toBuilder().setLeaderTerm(term).build());
    }

    @Override
    public VmStatus startVm(HostRecord host, VmRequest request) throws AgentCallException {
        return agents.startVm(host, request.toBuilder().setLeaderTerm(term).build());
    }

    @Override
    public VmStatus stopVm(HostRecord host, VmRequest request) throws AgentCallException {
        return agents.stopVm(host, request.toBuilder().setLeaderTerm(term).build());
    }

    @Override
    public VmStatus deleteVm(HostRecord host, VmRequest request) throws AgentCallException {
        return agents.deleteVm(host, request.toBuilder().setLeaderTerm(term).build());
    }

    @Override
    public VmStatus getVm(HostRecord host, String vm) throws AgentCallException {
        return agents.getVm(host, vm);
    }

    @Override
    public List<VmStatus> listVms(HostRecord host) throws AgentCallException {
        return agents.listVms(host);
    }

    @Override
    public MigrationEvent migrate(HostRecord source, MigrateRequest request, Consumer<MigrationEvent> events)
            throws AgentCallException {
        return agents.migrate(source, request.toBuilder().setLeaderTerm(term).build(), events);
    }

    @Override
    public CancelMigrationResponse cancelMigration(HostRecord source, CancelMigrationRequest request)
            throws AgentCallException {
        return agents.cancelMigration(
                source, request.toBuilder().setLeaderTerm(term).build());
    }

    @Override
    public SetMigrationLimitsResponse setMigrationLimits(HostRecord source, SetMigrationLimitsRequest request)
            throws AgentCallException {
        return agents.setMigrationLimits(
                source, request.toBuilder().setLeaderTerm(term).build());
    }

    @Override
    public List<dev.ferry.proto.agent.MigrationRecord> migrationRecords(
            HostRecord host, dev.ferry.proto.agent.MigrationRecordsRequest request) throws AgentCallException {
        return agents.migrationRecords(host, request);
    }

    @Override
    public LeaderTermResponse announceLeaderTerm(HostRecord host, LeaderTermRequest request) throws AgentCallException {
        return agents.announceLeaderTerm(
                host, request.toBuilder().setLeaderTerm(term).build());
    }

    /** The agents are the coordinator's, shared by its terms: it closes them. */
    @Override
    public void close() {}
}
