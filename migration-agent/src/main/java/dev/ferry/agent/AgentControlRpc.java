package dev.ferry.agent;

import dev.ferry.proto.agent.AgentInfo;
import dev.ferry.proto.agent.AgentInfoRequest;
import dev.ferry.proto.agent.AgentProto;
import dev.ferry.proto.agent.CancelMigrationRequest;
import dev.ferry.proto.agent.CancelMigrationResponse;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.LeaderTermRequest;
import dev.ferry.proto.agent.LeaderTermResponse;
import dev.ferry.proto.agent.ListVmsRequest;
import dev.ferry.proto.agent.ListVmsResponse;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.agent.PrepareIncomingResponse;
import dev.ferry.proto.agent.SetMigrationLimitsRequest;
import dev.ferry.proto.agent.SetMigrationLimitsResponse;
import dev.ferry.proto.agent.VmRequest;
import dev.ferry.proto.vm.VmStatus;
import dev.ferry.rpc.GrpcService;
import io.grpc.MethodDescriptor;

/** The agent control service, from agent.proto. */
public final class AgentControlRpc {
    public static final GrpcService SERVICE = GrpcService.of(AgentProto.getDescriptor(), "AgentControl");

    public static final MethodDescriptor<AgentInfoRequest, AgentInfo> GET_AGENT_INFO =
            SERVICE.method("GetAgentInfo", AgentInfoRequest.class, AgentInfo.class);
    public static final MethodDescriptor<CreateVmRequest, VmStatus> CREATE_VM =
            SERVICE.method("CreateVm", CreateVmRequest.class, VmStatus.class);
    public static final MethodDescriptor<VmRequest, VmStatus> START_VM =
            SERVICE.method("StartVm", VmRequest.class, VmStatus.class);
    public static final MethodDescriptor<VmRequest, VmStatus> STOP_VM =
            SERVICE.method("StopVm", VmRequest.class, VmStatus.class);
    public static final MethodDescriptor<VmRequest, VmStatus> DELETE_VM =
            SERVICE.method("DeleteVm", VmRequest.class, VmStatus.class);
    public static final MethodDescriptor<VmRequest, VmStatus> GET_VM =
            SERVICE.method("GetVm", VmRequest.class, VmStatus.class);
    public static final MethodDescriptor<ListVmsRequest, ListVmsResponse> LIST_VMS =
            SERVICE.method("ListVms", ListVmsRequest.class, ListVmsResponse.class);
    public static final MethodDescriptor<PrepareIncomingRequest, PrepareIncomingResponse> PREPARE_INCOMING =
            SERVICE.method("PrepareIncoming", PrepareIncomingRequest.class, PrepareIncomingResponse.class);
    public static final MethodDescriptor<MigrateRequest, MigrationEvent> MIGRATE =
            SERVICE.method("Migrate", MigrateRequest.class, MigrationEvent.class);
    public static final MethodDescriptor<CancelMigrationRequest, CancelMigrationResponse> CANCEL_MIGRATION =
            SERVICE.method("CancelMigration", CancelMigrationRequest.class, CancelMigrationResponse.class);
    public static final MethodDescriptor<SetMigrationLimitsRequest, SetMigrationLimitsResponse> SET_MIGRATION_LIMITS =
            SERVICE.method("SetMigrationLimits", SetMigrationLimitsRequest.class, SetMigrationLimitsResponse.class);
    public static final MethodDescriptor<
                    dev.ferry.proto.agent.MigrationRecordsRequest, dev.ferry.proto.agent.MigrationRecordsResponse>
            GET_MIGRATION_RECORDS = SERVICE.method(
                    "GetMigrationRecords",
                    dev.ferry.proto.agent.MigrationRecordsRequest.class,
                    dev.ferry.proto.agent.MigrationRecordsResponse.class);
    public static final MethodDescriptor<LeaderTermRequest, LeaderTermResponse> ANNOUNCE_LEADER_TERM =
            SERVICE.method("AnnounceLeaderTerm", LeaderTermRequest.class, LeaderTermResponse.class);

    public static final MethodDescriptor<dev.ferry.proto.agent.ConsoleRequest, dev.ferry.proto.agent.ConsoleOutput>
            CONSOLE = SERVICE.method(
                    "Console", dev.ferry.proto.agent.ConsoleRequest.class, dev.ferry.proto.agent.ConsoleOutput.class);

    private AgentControlRpc() {}
}
