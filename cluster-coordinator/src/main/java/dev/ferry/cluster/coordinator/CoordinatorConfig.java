package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.policy.RestartPolicy;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.RateLimit;
import dev.ferry.rpc.Transport;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.Objects;

/**
 * One coordinator replica's settings.
 *
 * @param zk the cluster's ZooKeeper and namespace
 * @param listen where the coordinator API is served (port 0 picks one)
 * @param advertise the endpoint other processes reach this replica at; null: the bound endpoint
 * @param failoverMargin the wait between seeing a host's session expire and restarting its VMs
 *     (see {@link dev.ferry.cluster.policy.FencePolicy})
 * @param reconcileInterval how often the leader compares desired and actual state
 * @param agentDeadline how long a call to an agent may take (migrations excepted)
 * @param intentRetention how long finished intents stay (so that a retried request finds them)
 * @param maxConcurrentRestarts restarts the leader carries out at once, cluster-wide; the others
 *     wait, in restart order ({@link RestartPolicy#DEFAULT_MAX_CONCURRENT} by default)
 * @param restartResetAfter how long a VM must run at one epoch before its restart attempts count
 *     from zero again ({@link RestartPolicy#DEFAULT_ATTEMPTS_RESET_AFTER} by default)
 * @param changeLimit each operator identity's budget of requests that change the cluster
 *     ({@link CoordinatorAccess#DEFAULT_CHANGE_LIMIT} by default); beyond it a request is refused
 *     with RESOURCE_EXHAUSTED before it writes anything
 * @param repairAcls with ZooKeeper x509: set the cluster's ACLs on every node of its tree at start
 *     when the audit finds nodes with others ({@link dev.ferry.cluster.store.AclAudit}); without
 *     it such a tree stops the start
 * @param metricsListen where the replica serves its Prometheus metrics ({@code GET /metrics});
 *     null: nowhere (they are still counted)
 * @param reports how many finished migrations' records the leader keeps in ZooKeeper (`ferry
 *     report`), and for how long ({@link MigrationReports#DEFAULT_RETENTION} by default)
 */
public record CoordinatorConfig(
        ZkClients zk,
        Endpoint listen,
        Endpoint advertise,
        Transport transport,
        Duration failoverMargin,
        Duration reconcileInterval,
        Duration agentDeadline,
        Duration intentRetention,
        int maxConcurrentRestarts,
        Duration restartResetAfter,
        RateLimit changeLimit,
        boolean repairAcls,
        InetSocketAddress metricsListen,
        MigrationReports.Retention reports) {
    public CoordinatorConfig {
        Objects.requireNonNull(reports, "reports");
        Objects.requireNonNull(zk, "zk");
        Objects.requireNonNull(listen, "listen");
        Objects.requireNonNull(transport, "transport");
        Objects.requireNonNull(restartResetAfter, "restartResetAfter");
        Objects.requireNonNull(changeLimit, "changeLimit");
        if (failoverMargin.isNegative()) {
            throw new IllegalArgumentException("failover margin must not be negative");
        }
        if (reconcileInterval.toMillis() < 50) {
            throw new IllegalArgumentException("reconcile interval must be at least 50 ms");
        }
        if (maxConcurrentRestarts < 1) {
            throw new IllegalArgumentException(
                    "the limit of concurrent restarts must be at least 1, got " + maxConcurrentRestarts);
        }
        if (restartResetAfter.isNegative() || restartResetAfter.isZero()) {
            throw new IllegalArgumentException("the restart reset time must be positive");
        }
    }

    public static CoordinatorConfig of(ZkClients zk, Endpoint listen, Duration failoverMargin) {
        return new CoordinatorConfig(
                zk,
                listen,
                null,
                Transport.plaintext(),
                failoverMargin,
                Duration.ofSeconds(2),
                Duration.ofSeconds(120),
                Duration.ofHours(1),
                RestartPolicy.DEFAULT_MAX_CONCURRENT,
                RestartPolicy.DEFAULT_ATTEMPTS_RESET_AFTER,
                CoordinatorAccess.DEFAULT_CHANGE_LIMIT,
                false,
                null,
                MigrationReports.DEFAULT_RETENTION);
    }

    public CoordinatorConfig withReconcileInterval(Duration d) {
        return with(b -> b.reconcileInterval = d);
    }

    /** The transport of this replica's server and of its channels to agents (mutual TLS or plaintext). */
    public CoordinatorConfig withTransport(Transport t) {
        return with(b -> b.transport = t);
    }

    public CoordinatorConfig withAdvertise(Endpoint e) {
        return with(b -> b.advertise = e);
    }

    public CoordinatorConfig withIntentRetention(Duration d) {
        return with(b -> b.intentRetention = d);
    }

    public CoordinatorConfig withMaxConcurrentRestarts(int n) {
        return with(b -> b.maxConcurrentRestarts = n);
    }

    public CoordinatorConfig withRestartResetAfter(Duration d) {
        return with(b -> b.restartResetAfter = d);
    }

    /** Each operator's budget of requests that change the cluster. */
    public CoordinatorConfig withChangeLimit(RateLimit limit) {
        return with(b -> b.changeLimit = limit);
    }

    /** Whether to repair the ACLs of the cluster's tree at start (see {@code repairAcls}). */
    public CoordinatorConfig withRepairAcls(boolean repair) {
        return with(b -> b.repairAcls = repair);
    }

    /** Serve this replica's metrics on {@code at} (port 0 picks one); null: not at all. */
    public CoordinatorConfig withMetricsListen(InetSocketAddress at) {
        return with(b -> b.metricsListen = at);
    }

    /** How many finished migrations' records the leader keeps, and for how long. */
    public CoordinatorConfig withReports(MigrationReports.Retention r) {
        return with(b -> b.reports = r);
    }

    /**
     * These settings with {@code change} applied: one place copies every component, so that a
     * setting added later cannot be dropped by a {@code with} method that forgot it.
     */
    private CoordinatorConfig with(java.util.function.Consumer<Copy> change) {
        Copy b = new Copy(this);
        change.accept(b);
        return b.build();
    }

    /** A mutable copy of every component, for {@link #with}. */
    private static final class Copy {
        ZkClients zk;
        Endpoint listen;
        Endpoint advertise;
        Transport transport;
        Duration failoverMargin;
        Duration reconcileInterval;
        Duration agentDeadline;
        Duration intentRetention;
        int maxConcurrentRestarts;
        Duration restartResetAfter;
        RateLimit changeLimit;
        boolean repairAcls;
        InetSocketAddress metricsListen;
        MigrationReports.Retention reports;

        Copy(CoordinatorConfig c) {
            zk = c.zk;
            listen = c.listen;
            advertise = c.advertise;
            transport = c.transport;
            failoverMargin = c.failoverMargin;
            reconcileInterval = c.reconcileInterval;
            agentDeadline = c.agentDeadline;
            intentRetention = c.intentRetention;
            maxConcurrentRestarts = c.maxConcurrentRestarts;
            restartResetAfter = c.restartResetAfter;
            changeLimit = c.changeLimit;
            repairAcls = c.repairAcls;
            metricsListen = c.metricsListen;
            reports = c.reports;
        }

        CoordinatorConfig build() {
            return new CoordinatorConfig(
                    zk,
                    listen,
                    advertise,
                    transport,
                    failoverMargin,
                    reconcileInterval,
                    agentDeadline,
                    intentRetention,
                    maxConcurrentRestarts,
                    restartResetAfter,
                    changeLimit,
                    repairAcls,
                    metricsListen,
                    reports);
        }
    }
}
