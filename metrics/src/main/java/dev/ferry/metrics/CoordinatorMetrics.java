package dev.ferry.metrics;

import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Info;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * What a coordinator replica measures: its leadership, its ZooKeeper connection, the intents it
 * carries out and, while it leads, the cluster as its picture shows it. Every replica serves its
 * own; only the leader's picture gauges have series (a follower's would be stale or empty), so
 * {@code max} or {@code sum} over replicas gives the cluster's value. docs/OPERATIONS.md lists
 * every one.
 */
public final class CoordinatorMetrics extends DaemonMetrics {
    /** The states of {@code ferry_coordinator_zookeeper_state}, Curator's connection states folded. */
    public static final List<String> ZOOKEEPER_STATES = List.of("connected", "suspended", "lost", "read_only");

    /** What the leader's picture of the cluster says, at a scrape. */
    public interface LeaderView {
        /** Intents still PENDING or RUNNING, by kind (create, migrate, restart, drain, ...). */
        Map<String, Integer> openIntentsByKind();

        /** Hosts by state: alive (registered), maintenance. */
        Map<String, Integer> hostsByState();

        /** VMs whose run lock each live host holds: what runs (or is paused) there. */
        Map<String, Integer> vmsRunningByHost();

        /** VM records by phase (starting, running, stopped, migrating, restarting, failed). */
        Map<String, Integer> vmsByPhase();

        /** Restarts of failed hosts' VMs in flight now (at most --max-concurrent-restarts). */
        int restartsInFlight();
    }

    private final Counter leaderChanges;
    private final Counter hostLosses;
    private final Counter intentsCreated;
    private final Counter intentsFinished;
    private final Gauge zooKeeper;

    public CoordinatorMetrics(String cluster, String version) {
        Info.builder()
                .name("ferry_coordinator_info")
                .help("The coordinator replica: the cluster it serves and its version (always 1).")
                .labelNames("cluster", "version")
                .register(registry)
                .addLabelValues(cluster, version);
        leaderChanges = Counter.builder()
                .name("ferry_coordinator_leader_changes_total")
                .help("Times this replica took office as leader (each a new leader term). Summed over the replicas:"
                        + " the cluster's leader changes.")
                .withoutExemplars()
                .register(registry);
        hostLosses = Counter.builder()
                .name("ferry_coordinator_host_failovers_total")
                .help("Hosts whose ZooKeeper session ended while this replica led: each starts a failover, their VMs"
                        + " restarted elsewhere after the failover margin.")
                .withoutExemplars()
                .register(registry);
        intentsCreated = Counter.builder()
                .name("ferry_coordinator_intents_created_total")
                .help("Intents this replica wrote as leader, by kind (create, start, stop, delete, migrate, restart,"
                        + " drain, activate); restart intents are the failover's VM restarts.")
                .labelNames("kind")
                .withoutExemplars()
                .register(registry);
        intentsFinished = Counter.builder()
                .name("ferry_coordinator_intents_finished_total")
                .help("Intents this replica carried to their end as leader, by kind and outcome (done, failed);"
                        + " kind=\"restart\" counts VM restarts after host failures, kind=\"migrate\" live migrations.")
                .labelNames("kind", "outcome")
                .withoutExemplars()
                .register(registry);
        zooKeeper = Gauge.builder()
                .name("ferry_coordinator_zookeeper_state")
                .help("This replica's ZooKeeper connection, 1 for the state it is in: connected, suspended (no answer"
                        + " for a while: leadership given up until it is back), lost (the session expired), read_only.")
                .labelNames("state")
                .register(registry);
        for (String s : ZOOKEEPER_STATES) {
            zooKeeper.labelValues(s).set(0);
        }
    }

    /** Leadership as this replica sees it, asked at each scrape. Call once. */
    public void leadership(BooleanSupplier isLeader, LongSupplier term) {
        GaugeWithCallback.builder()
                .name("ferry_coordinator_is_leader")
                .help("1 while this replica leads the cluster, else 0.")
                .callback(cb -> cb.call(isLeader.getAsBoolean() ? 1 : 0))
                .register(registry);
        GaugeWithCallback.builder()
                .name("ferry_coordinator_leader_term")
                .help("The leader term this replica holds while it leads (terms only grow), else 0.")
                .callback(cb -> cb.call(term.getAsLong()))
                .register(registry);
    }

    /** The leader's picture, asked at each scrape; {@code current} gives null while this replica does not lead. Call once. */
    public void leaderView(Supplier<LeaderView> current) {
        callback(
                "ferry_coordinator_open_intents",
                "Intents still pending or running, by kind (leader only).",
                "kind",
                current,
                LeaderView::openIntentsByKind);
        callback(
                "ferry_cluster_hosts",
                "Hosts by state: alive (registered in ZooKeeper), maintenance (leader only).",
                "state",
                current,
                LeaderView::hostsByState);
        callback(
                "ferry_cluster_vms_running",
                "VMs each live host holds the run lock of: running there, or paused there (leader only).",
                "host",
                current,
                LeaderView::vmsRunningByHost);
        callback(
                "ferry_cluster_vms",
                "VM records by phase: starting, running, stopped, migrating, restarting, failed (leader only).",
                "phase",
                current,
                LeaderView::vmsByPhase);
        GaugeWithCallback.builder()
                .name("ferry_coordinator_restarts_in_flight")
                .help("Restarts of failed hosts' VMs in flight now, at most --max-concurrent-restarts (leader only).")
                .callback(cb -> {
                    LeaderView v = current.get();
                    if (v != null) {
                        cb.call(v.restartsInFlight());
                    }
                })
                .register(registry);
    }

    private void callback(
            String name,
            String help,
            String label,
            Supplier<LeaderView> current,
            java.util.function.Function<LeaderView, Map<String, Integer>> part) {
        Consumer<GaugeWithCallback.Callback> each = cb -> {
            LeaderView v = current.get();
            if (v != null) {
                part.apply(v).forEach((key, n) -> cb.call(n, key));
            }
        };
        GaugeWithCallback.builder()
                .name(name)
                .help(help)
                .labelNames(label)
                .callback(each)
                .register(registry);
    }

    /** This replica took office (a new term). */
    public void tookOffice() {
        leaderChanges.inc();
    }

    /** A host's session ended while this replica led: a failover begins. */
    public void hostLost() {
        hostLosses.inc();
    }

    /** This leader wrote a new intent of {@code kind}. */
    public void intentCreated(String kind) {
        intentsCreated.labelValues(kind).inc();
    }

    /** This leader carried an intent of {@code kind} to its end. */
    public void intentFinished(String kind, boolean done) {
        intentsFinished.labelValues(kind, done ? "done" : "failed").inc();
    }

    /** The ZooKeeper connection is now in {@code state}, one of {@link #ZOOKEEPER_STATES}. */
    public void zooKeeper(String state) {
        if (!ZOOKEEPER_STATES.contains(state)) {
            throw new IllegalArgumentException("unknown ZooKeeper state " + state);
        }
        synchronized (zooKeeper) {
            for (String s : ZOOKEEPER_STATES) {
                zooKeeper.labelValues(s).set(s.equals(state) ? 1 : 0);
            }
        }
    }
}
