package dev.ferry.cluster.coordinator;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
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
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import io.grpc.Status;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;

/** Agents over gRPC: one client (channel) per host endpoint, kept while the endpoint stays the same. */
public final class GrpcAgentActions implements AgentActions {
    private final Transport transport;
    private final Duration deadline;
    private final Map<String, AgentClient> clients = new ConcurrentHashMap<>();

    public GrpcAgentActions(Transport transport, Duration deadline) {
        this.transport = transport;
        this.deadline = deadline;
    }

    private AgentClient client(HostRecord host) {
        String key = host.getHostId() + "@" + host.getEndpoint();
        return clients.computeIfAbsent(key, k -> {
            Endpoint e;
            try {
                e = Endpoint.parse(host.getEndpoint());
            } catch (IllegalArgumentException bad) {
                throw new AgentCallException(
                        Status.Code.INVALID_ARGUMENT,
                        "host " + host.getHostId() + " registered a bad endpoint '" + host.getEndpoint() + "'",
                        bad);
            }
            return new AgentClient(transport, host.getHostId(), e, deadline);
        });
    }

    @Override
    public VmStatus createVm(HostRecord host, CreateVmRequest request) {
        return client(host).createVm(request);
    }

    @Override
    public VmStatus startVm(HostRecord host, VmRequest request) {
        return client(host).startVm(request);
    }

    @Override
    public VmStatus stopVm(HostRecord host, VmRequest request) {
        return client(host).stopVm(request);
    }

    @Override
    public VmStatus deleteVm(HostRecord host, VmRequest request) {
        return client(host).deleteVm(request);
    }

    @Override
    public VmStatus getVm(HostRecord host, String vm) {
        return client(host).getVm(vm);
    }

    @Override
    public List<VmStatus> listVms(HostRecord host) {
        return client(host).listVms();
    }

    @Override
    public MigrationEvent migrate(HostRecord source, MigrateRequest request, Consumer<MigrationEvent> events) {
        return client(source).migrate(request, events);
    }

    @Override
    public CancelMigrationResponse cancelMigration(HostRecord source, CancelMigrationRequest request) {
        return client(source).cancelMigration(request);
    }

    @Override
    public SetMigrationLimitsResponse setMigrationLimits(HostRecord source, SetMigrationLimitsRequest request) {
        return client(source).setMigrationLimits(request);
    }

    @Override
    public List<dev.ferry.proto.agent.MigrationRecord> migrationRecords(
            HostRecord host, dev.ferry.proto.agent.MigrationRecordsRequest request) {
        return client(host).migrationRecords(request);
    }

    @Override
    public LeaderTermResponse announceLeaderTerm(HostRecord host, LeaderTermRequest request) {
        return client(host).announceLeaderTerm(request);
    }

    @Override
    public io.grpc.stub.StreamObserver<dev.ferry.proto.agent.ConsoleRequest> console(
            HostRecord host, io.grpc.stub.StreamObserver<dev.ferry.proto.agent.ConsoleOutput> out) {
        return client(host).console(out);
    }

    @Override
    public void close() {
        clients.values().forEach(AgentClient::close);
        clients.clear();
    }
}
