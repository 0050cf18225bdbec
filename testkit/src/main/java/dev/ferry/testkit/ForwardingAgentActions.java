package dev.ferry.testkit;

import dev.ferry.cluster.coordinator.AgentActions;
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

/** Every call to another {@link AgentActions}; fault injectors override the calls they meddle with. */
public class ForwardingAgentActions implements AgentActions {
    protected final AgentActions inner;

    public ForwardingAgentActions(AgentActions inner) {
        this.inner = inner;
    }

    @Override
    public VmStatus createVm(HostRecord host, CreateVmRequest request) {
        return inner.createVm(host, request);
    }

    @Override
    public VmStatus startVm(HostRecord host, VmRequest request) {
        return inner.startVm(host, request);
    }

    @Override
    public VmStatus stopVm(HostRecord host, VmRequest request) {
        return inner.stopVm(host, request);
    }

    @Override
    public VmStatus deleteVm(HostRecord host, VmRequest request) {
        return inner.deleteVm(host, request);
    }

    @Override
    public VmStatus getVm(HostRecord host, String vm) {
        return inner.getVm(host, vm);
    }

    @Override
    public List<VmStatus> listVms(HostRecord host) {
        return inner.listVms(host);
    }

    @Override
    public MigrationEvent migrate(HostRecord source, MigrateRequest request, Consumer<MigrationEvent> events) {
        return inner.migrate(source, request, events);
    }

    @Override
    public CancelMigrationResponse cancelMigration(HostRecord source, CancelMigrationRequest request) {
        return inner.cancelMigration(source, request);
    }

    @Override
    public SetMigrationLimitsResponse setMigrationLimits(HostRecord source, SetMigrationLimitsRequest request) {
        return inner.setMigrationLimits(source, request);
    }

    @Override
    public List<dev.ferry.proto.agent.MigrationRecord> migrationRecords(
            HostRecord host, dev.ferry.proto.agent.MigrationRecordsRequest request) {
        return inner.migrationRecords(host, request);
    }

    @Override
    public LeaderTermResponse announceLeaderTerm(HostRecord host, LeaderTermRequest request) {
        return inner.announceLeaderTerm(host, request);
    }

    @Override
    public io.grpc.stub.StreamObserver<dev.ferry.proto.agent.ConsoleRequest> console(
            HostRecord host, io.grpc.stub.StreamObserver<dev.ferry.proto.agent.ConsoleOutput> out) {
        return inner.console(host, out);
    }

    @Override
    public void close() {
        inner.close();
    }
}
