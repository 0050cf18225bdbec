package dev.ferry.cluster.coordinator;

import static dev.ferry.pki.Role.AGENT;
import static dev.ferry.pki.Role.OPERATOR;
import static dev.ferry.pki.Role.VIEWER;

import dev.ferry.cluster.client.CoordinatorRpc;
import dev.ferry.rpc.AccessPolicy;
import dev.ferry.rpc.RateLimit;
import dev.ferry.rpc.ServingHealth;
import java.util.List;

/**
 * Who may call a coordinator: operators change the cluster, viewers only look, and agents only
 * ask the outage questions their fence depends on.
 */
public final class CoordinatorAccess {
    private CoordinatorAccess() {}

    /** Requests that change the cluster (each writes an intent or a record to ZooKeeper). */
    static final List<String> CHANGES = List.of(
            "CreateVm",
            "StartVm",
            "StopVm",
            "DeleteVm",
            "Migrate",
            "CancelMigration",
            "SetMigrationLimits",
            "Drain",
            "Activate");

    /**
     * Per operator identity: a script creating a hundred VMs in a loop goes through at once, and
     * a loop gone wrong settles at 20 intents a second, which ZooKeeper and the coordinator take
     * in their stride.
     */
    public static final RateLimit DEFAULT_CHANGE_LIMIT = new RateLimit(20, 100);

    public static AccessPolicy policy() {
        return policy(DEFAULT_CHANGE_LIMIT);
    }

    /** The policy with {@code changes} as each operator's budget of requests that change the cluster. */
    public static AccessPolicy policy(RateLimit changes) {
        return ServingHealth.allowEveryRole(AccessPolicy.builder())
                .allow(
                        CoordinatorRpc.SERVICE,
                        List.of("GetStatus", "ListHosts", "ListVms", "GetVm", "ListMigrations", "GetMigrationReport"),
                        OPERATOR,
                        VIEWER)
                .allow(CoordinatorRpc.SERVICE, CHANGES, OPERATOR)
                .limit(CoordinatorRpc.SERVICE, CHANGES, changes)
                .allow(OutagePromises.SERVICE, List.of("AttestOutage"), AGENT)
                // Viewers may follow a console; only operators may write to one (mayWriteConsole,
                // checked when the stream opens: the role alone cannot tell a follower from a writer).
                .allow(CoordinatorRpc.SERVICE, List.of("Console"), OPERATOR, VIEWER)
                .build();
    }

    /**
     * Whether {@code caller} may send input to a guest's console: operators only. Without TLS
     * (--insecure, no identities) the transport decides nothing, and neither does this.
     */
    public static boolean mayWriteConsole(java.util.Optional<dev.ferry.pki.Identity> caller) {
        return caller.isEmpty() || caller.get().role() == OPERATOR;
    }
}
