package dev.ferry.cluster.client;

import dev.ferry.proto.agent.CancelMigrationResponse;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.SetMigrationLimitsRequest;
import dev.ferry.proto.agent.SetMigrationLimitsResponse;
import dev.ferry.proto.coordinator.ClusterStatus;
import dev.ferry.proto.coordinator.CoordinatorProto;
import dev.ferry.proto.coordinator.CreateVmRequest;
import dev.ferry.proto.coordinator.DrainProgress;
import dev.ferry.proto.coordinator.DrainRequest;
import dev.ferry.proto.coordinator.HostRef;
import dev.ferry.proto.coordinator.HostView;
import dev.ferry.proto.coordinator.ListHostsRequest;
import dev.ferry.proto.coordinator.ListHostsResponse;
import dev.ferry.proto.coordinator.ListMigrationsRequest;
import dev.ferry.proto.coordinator.ListMigrationsResponse;
import dev.ferry.proto.coordinator.ListVmsRequest;
import dev.ferry.proto.coordinator.ListVmsResponse;
import dev.ferry.proto.coordinator.MigrateRequest;
import dev.ferry.proto.coordinator.StatusRequest;
import dev.ferry.proto.coordinator.VmRef;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.rpc.GrpcService;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;

/** The coordinator service, from coordinator.proto. */
public final class CoordinatorRpc {
    private CoordinatorRpc() {}

    public static final GrpcService SERVICE = GrpcService.of(CoordinatorProto.getDescriptor(), "Coordinator");

    /** Trailer of a replica that does not lead: where the leader is. */
    public static final Metadata.Key<String> LEADER = Metadata.Key.of("ferry-leader", Metadata.ASCII_STRING_MARSHALLER);

    public static final MethodDescriptor<StatusRequest, ClusterStatus> GET_STATUS =
            SERVICE.method("GetStatus", StatusRequest.class, ClusterStatus.class);
    public static final MethodDescriptor<ListHostsRequest, ListHostsResponse> LIST_HOSTS =
            SERVICE.method("ListHosts", ListHostsRequest.class, ListHostsResponse.class);
    public static final MethodDescriptor<ListVmsRequest, ListVmsResponse> LIST_VMS =
            SERVICE.method("ListVms", ListVmsRequest.class, ListVmsResponse.class);
    public static final MethodDescriptor<VmRef, VmView> GET_VM = SERVICE.method("GetVm", VmRef.class, VmView.class);
    public static final MethodDescriptor<CreateVmRequest, VmView> CREATE_VM =
            SERVICE.method("CreateVm", CreateVmRequest.class, VmView.class);
    public static final MethodDescriptor<VmRef, VmView> START_VM = SERVICE.method("StartVm", VmRef.class, VmView.class);
    public static final MethodDescriptor<VmRef, VmView> STOP_VM = SERVICE.method("StopVm", VmRef.class, VmView.class);
    public static final MethodDescriptor<VmRef, VmView> DELETE_VM =
            SERVICE.method("DeleteVm", VmRef.class, VmView.class);
    public static final MethodDescriptor<MigrateRequest, MigrationEvent> MIGRATE =
            SERVICE.method("Migrate", MigrateRequest.class, MigrationEvent.class);
    public static final MethodDescriptor<VmRef, CancelMigrationResponse> CANCEL_MIGRATION =
            SERVICE.method("CancelMigration", VmRef.class, CancelMigrationResponse.class);
    public static final MethodDescriptor<DrainRequest, DrainProgress> DRAIN =
            SERVICE.method("Drain", DrainRequest.class, DrainProgress.class);
    public static final MethodDescriptor<HostRef, HostView> ACTIVATE =
            SERVICE.method("Activate", HostRef.class, HostView.class);
    public static final MethodDescriptor<SetMigrationLimitsRequest, SetMigrationLimitsResponse> SET_MIGRATION_LIMITS =
            SERVICE.method("SetMigrationLimits", SetMigrationLimitsRequest.class, SetMigrationLimitsResponse.class);
    public static final MethodDescriptor<
                    dev.ferry.proto.coordinator.MigrationReportRequest, dev.ferry.proto.coordinator.MigrationReport>
            GET_MIGRATION_REPORT = SERVICE.method(
                    "GetMigrationReport",
                    dev.ferry.proto.coordinator.MigrationReportRequest.class,
                    dev.ferry.proto.coordinator.MigrationReport.class);
    public static final MethodDescriptor<ListMigrationsRequest, ListMigrationsResponse> LIST_MIGRATIONS =
            SERVICE.method("ListMigrations", ListMigrationsRequest.class, ListMigrationsResponse.class);
    public static final MethodDescriptor<dev.ferry.proto.agent.ConsoleRequest, dev.ferry.proto.agent.ConsoleOutput>
            CONSOLE = SERVICE.method(
                    "Console", dev.ferry.proto.agent.ConsoleRequest.class, dev.ferry.proto.agent.ConsoleOutput.class);
}
