package dev.ferry.agent;

import static dev.ferry.pki.Role.AGENT;
import static dev.ferry.pki.Role.COORDINATOR;
import static dev.ferry.pki.Role.OPERATOR;
import static dev.ferry.pki.Role.VIEWER;

import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.pki.Role;
import dev.ferry.rpc.AccessPolicy;
import dev.ferry.rpc.ServingHealth;
import java.util.List;

/**
 * Who may call an agent. In a cluster only the coordinator gives orders (an operator goes through
 * it, so every order is an intent with an epoch); a standalone agent takes them from operators.
 * Other agents may only prepare, stream to and cancel migrations they are the source of (the
 * handlers check which source; the role is checked here).
 */
public final class AgentAccess {
    private AgentAccess() {}

    public static AccessPolicy policy(boolean clustered) {
        Role orders = clustered ? COORDINATOR : OPERATOR;
        return ServingHealth.allowEveryRole(AccessPolicy.builder())
                .allow(
                        AgentControlRpc.SERVICE,
                        List.of("GetAgentInfo", "GetVm", "ListVms", "GetMigrationRecords"),
                        COORDINATOR,
                        OPERATOR,
                        VIEWER,
                        AGENT)
                .allow(
                        AgentControlRpc.SERVICE,
                        List.of(
                                "CreateVm",
                                "StartVm",
                                "StopVm",
                                "DeleteVm",
                                "Migrate",
                                "SetMigrationLimits",
                                "AnnounceLeaderTerm"),
                        orders)
                .allow(AgentControlRpc.SERVICE, List.of("CancelMigration"), orders, AGENT)
                .allow(AgentControlRpc.SERVICE, List.of("PrepareIncoming"), AGENT)
                // The console: in a cluster only through the coordinator (which checks the operator or
                // viewer behind it); standalone, operators read and write, viewers only follow (the
                // handler refuses their input: ConsoleService).
                .allow(AgentControlRpc.SERVICE, List.of("Console"), orders, clustered ? orders : VIEWER)
                .allow(MigrationStreamRpc.SERVICE, List.of("Transfer"), AGENT)
                .build();
    }
}
