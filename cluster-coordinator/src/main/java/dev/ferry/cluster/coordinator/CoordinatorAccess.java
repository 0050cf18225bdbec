package dev.ferry.cluster.coordinator;

import static dev.ferry.pki.Role.AGENT;
import static dev.ferry.pki.Role.OPERATOR;
import static dev.ferry.pki.Role.VIEWER;

import dev.ferry.cluster.client.CoordinatorRpc;
import dev.ferry.rpc.AccessPolicy;
import java.util.List;

/**
 * Who may call a coordinator: operators change the cluster, viewers only look, and agents only
 * ask the outage questions their fence depends on.
 */
public final class CoordinatorAccess {
    private CoordinatorAccess() {}

    public static AccessPolicy policy() {
        return AccessPolicy.builder()
                .allow(CoordinatorRpc.SERVICE, List.of("GetStatus", "ListHosts", "ListVms", "GetVm"), OPERATOR, VIEWER)
                .allow(
                        CoordinatorRpc.SERVICE,
                        List.of(
                                "CreateVm",
                                "StartVm",
                                "StopVm",
                                "DeleteVm",
                                "Migrate",
                                "CancelMigration",
                                "Drain",
                                "Activate"),
                        OPERATOR)
                .allow(OutagePromises.SERVICE, List.of("AttestOutage"), AGENT)
                .build();
    }
}
