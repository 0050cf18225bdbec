package dev.ferry.metrics;

import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.core.metrics.Histogram;
import java.util.Map;
import java.util.Objects;
import java.util.function.IntSupplier;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

/**
 * What an agent measures. Names follow KubeVirt's {@code kubevirt_vmi_migration_*} metrics where
 * they mean the same (bytes, and bytes per second for the rates, as KubeVirt's are), with the
 * prefix {@code ferry_}; the rest are Ferry's own. docs/OPERATIONS.md lists every one.
 *
 * <p>The per-VM progress gauges exist only while that VM's outgoing migration runs (on its
 * source agent): a scrape that sees them sees a migration in progress.
 */
public final class AgentMetrics extends DaemonMetrics {
    /** Pauses from a few milliseconds (an idle sim guest) to the tens of seconds of a forced switchover. */
    private static final double[] PAUSE_BUCKETS = {0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 5, 10, 30};

    private static final double[] DURATION_BUCKETS = {0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800};

    private final Gauge processed;
    private final Gauge remaining;
    private final Gauge total;
    private final Gauge transferRate;
    private final Gauge diskTransferRate;
    private final Gauge dirtyRate;
    private final Gauge round;
    private final Gauge expectedDowntime;
    private final Gauge wire;
    private final Gauge running;
    private final Counter started;
    private final Counter succeeded;
    private final Counter failed;
    private final Counter cancelled;
    private final Histogram downtime;
    private final Histogram downtimeSteps;
    private final Histogram duration;
    private final Counter verifications;

    /**
     * @param host this agent's host id, driver and version, for {@code ferry_agent_info} (Prometheus
     *     knows a target by its address; this says which host it is)
     */
    public AgentMetrics(String host, String driver, String version) {
        io.prometheus.metrics.core.metrics.Info.builder()
                .name("ferry_agent_info")
                .help("The agent: its host id, hypervisor driver and version (always 1).")
                .labelNames("host", "driver", "version")
                .register(registry)
                .addLabelValues(host, driver, version);
        processed = gauge(
                "ferry_vmi_migration_data_processed_bytes",
                "Guest memory bytes the running migration has sent so far, all rounds (zero pages included, before"
                        + " compression); KubeVirt's kubevirt_vmi_migration_data_processed_bytes.");
        remaining = gauge(
                "ferry_vmi_migration_data_remaining_bytes",
                "Guest memory bytes still to send: the rest of the round in progress, or after a round the pages the"
                        + " guest dirtied meanwhile; KubeVirt's kubevirt_vmi_migration_data_remaining_bytes.");
        total = gauge(
                "ferry_vmi_migration_data_total_bytes",
                "The guest's memory size; KubeVirt's kubevirt_vmi_migration_data_total_bytes.");
        transferRate = gauge(
                "ferry_vmi_migration_memory_transfer_rate_bytes",
                "Bytes per second the round in progress (or the last one) put on the wire; KubeVirt's"
                        + " kubevirt_vmi_migration_memory_transfer_rate_bytes.");
        diskTransferRate = gauge(
                "ferry_vmi_migration_disk_transfer_rate_bytes",
                "The same value as ferry_vmi_migration_memory_transfer_rate_bytes, under the older KubeVirt name"
                        + " kubevirt_vmi_migration_disk_transfer_rate_bytes (which also measures memory), for dashboards"
                        + " written for it.");
        dirtyRate = gauge(
                "ferry_vmi_migration_dirty_memory_rate_bytes",
                "Bytes per second the guest dirtied, measured at the last round's end; KubeVirt's"
                        + " kubevirt_vmi_migration_dirty_memory_rate_bytes.");
        round = gauge(
                "ferry_vmi_migration_round",
                "The pre-copy round in progress: 0 sends every page, each later one the pages dirtied meanwhile.");
        expectedDowntime = gauge(
                "ferry_vmi_migration_expected_downtime_seconds",
                "The pause the convergence policy expected at the last round's end, were it to switch over then"
                        + " (from the first round's end on).");
        wire = gauge(
                "ferry_vmi_migration_transferred_bytes",
                "Bytes the running migration has put on the wire so far (after zero-page elision and compression,"
                        + " device state included).");
        running = together(Gauge.builder()
                .name("ferry_vmi_migrations_in_running_phase")
                .help("Outgoing migrations this agent is running now; KubeVirt's"
                        + " kubevirt_vmi_migrations_in_running_phase.")
                .register(registry));
        started = counter(
                "ferry_vmi_migration_started_total", "Outgoing migrations this agent started (source side).", "vm");
        succeeded = counter(
                "ferry_vmi_migration_succeeded_total",
                "Outgoing migrations that completed: the destination owns and runs the VM; KubeVirt's"
                        + " kubevirt_vmi_migration_succeeded.",
                "vm");
        failed = counter(
                "ferry_vmi_migration_failed_total",
                "Outgoing migrations that failed, by the step that failed (prepare, handshake, precopy, pause,"
                        + " final_pages, device_state, verify, commit, resume); KubeVirt's kubevirt_vmi_migration_failed.",
                "vm",
                "step");
        cancelled = counter(
                "ferry_vmi_migration_cancelled_total",
                "Outgoing migrations cancelled before their commit (ferry cancel, Ctrl-C, a coordinator's order).",
                "vm");
        downtime = Histogram.builder()
                .name("ferry_vmi_migration_downtime_seconds")
                .help("The pause of each completed migration: from the moment the guest stopped on the source until"
                        + " it ran on the destination.")
                .classicOnly()
                .classicUpperBounds(PAUSE_BUCKETS)
                .withoutExemplars()
                .register(registry);
        downtimeSteps = Histogram.builder()
                .name("ferry_vmi_migration_downtime_step_seconds")
                .help("Where each completed migration's pause went: final_pages (pause to the final pages sent; with"
                        + " QEMU, its device-state save comes first and is in it), device_state (until the destination"
                        + " applied everything and, with --verify, digested its RAM), commit (the ownership commit),"
                        + " resume (until the destination ran the guest).")
                .labelNames("step")
                .classicOnly()
                .classicUpperBounds(PAUSE_BUCKETS)
                .withoutExemplars()
                .register(registry);
        duration = Histogram.builder()
                .name("ferry_vmi_migration_duration_seconds")
                .help("How long each completed migration took, from the prepare to the destination running the guest.")
                .classicOnly()
                .classicUpperBounds(DURATION_BUCKETS)
                .withoutExemplars()
                .register(registry);
        verifications = counter(
                "ferry_vmi_migration_memory_verifications_total",
                "Whole-RAM digest comparisons at the pause point (migrate --verify): match, or mismatch (the"
                        + " migration failed at verify and the source ran on).",
                "result");
        verifications.initLabelValues("match");
        verifications.initLabelValues("mismatch");
    }

    /** One of a running migration's series, by VM: they come and go together. */
    private Gauge gauge(String name, String help) {
        return together(Gauge.builder().name(name).help(help).labelNames("vm").register(registry));
    }

    private Counter counter(String name, String help, String... labels) {
        return Counter.builder()
                .name(name)
                .help(help)
                .labelNames(labels)
                .withoutExemplars()
                .register(registry);
    }

    /**
     * An outgoing migration of {@code vm} begins: counted as started and running, with its progress
     * gauges, until {@link OutgoingMigration#close}.
     */
    public OutgoingMigration outgoing(String vm, long ramBytes) {
        Objects.requireNonNull(vm, "vm");
        started.labelValues(vm).inc();
        synchronized (seriesTogether) {
            running.inc();
            total.labelValues(vm).set(ramBytes);
            processed.labelValues(vm).set(0);
            remaining.labelValues(vm).set(ramBytes);
            round.labelValues(vm).set(0);
            transferRate.labelValues(vm).set(0);
            diskTransferRate.labelValues(vm).set(0);
            dirtyRate.labelValues(vm).set(0);
            wire.labelValues(vm).set(0);
        }
        // The expected pause has no series until the first round's end: there is no estimate before.
        return new OutgoingMigration(vm);
    }

    /**
     * One running outgoing migration's metrics. Progress may come from the sender's progress ticker
     * while the migration ends; once closed, nothing brings its gauges back.
     */
    public final class OutgoingMigration implements AutoCloseable {
        private final String vm;
        private boolean closed;

        private OutgoingMigration(String vm) {
            this.vm = vm;
        }

        /**
         * Progress: after a round, or while a long one is sent.
         *
         * @param roundNumber the round in progress or just ended
         * @param processedBytes guest bytes sent so far, every round
         * @param remainingBytes guest bytes still to send (see {@code ferry_vmi_migration_data_remaining_bytes})
         * @param wireBytesPerSecond the round's bytes on the wire per second
         * @param transferredBytes bytes on the wire so far
         */
        public synchronized void progress(
                int roundNumber,
                long processedBytes,
                long remainingBytes,
                double wireBytesPerSecond,
                long transferredBytes) {
            if (closed) {
                return;
            }
            round.labelValues(vm).set(roundNumber);
            processed.labelValues(vm).set(processedBytes);
            remaining.labelValues(vm).set(remainingBytes);
            transferRate.labelValues(vm).set(wireBytesPerSecond);
            diskTransferRate.labelValues(vm).set(wireBytesPerSecond);
            wire.labelValues(vm).set(transferredBytes);
        }

        /** What a round's end measured: the guest's dirty rate and the pause expected were it to switch over now. */
        public synchronized void measured(double dirtyBytesPerSecond, double expectedDowntimeSeconds) {
            if (closed) {
                return;
            }
            dirtyRate.labelValues(vm).set(dirtyBytesPerSecond);
            expectedDowntime.labelValues(vm).set(expectedDowntimeSeconds);
        }

        /**
         * The migration completed.
         *
         * @param verified true when the destination's RAM digest matched the source's (--verify)
         */
        public void succeeded(
                double downtimeSeconds,
                double finalPagesSeconds,
                double deviceStateSeconds,
                double commitSeconds,
                double resumeSeconds,
                double totalSeconds,
                boolean verified) {
            succeeded.labelValues(vm).inc();
            downtime.observe(downtimeSeconds);
            downtimeSteps.labelValues("final_pages").observe(finalPagesSeconds);
            downtimeSteps.labelValues("device_state").observe(deviceStateSeconds);
            downtimeSteps.labelValues("commit").observe(commitSeconds);
            downtimeSteps.labelValues("resume").observe(resumeSeconds);
            duration.observe(totalSeconds);
            if (verified) {
                verifications.labelValues("match").inc();
            }
        }

        /**
         * The migration failed at {@code step} (a lower-case step name, e.g. "verify").
         *
         * @param memoryMismatch the failure was the destination's RAM differing from the source's
         */
        public void failed(String step, boolean memoryMismatch) {
            failed.labelValues(vm, step).inc();
            if (memoryMismatch) {
                verifications.labelValues("mismatch").inc();
            }
        }

        public void cancelled() {
            cancelled.labelValues(vm).inc();
        }

        /** The migration is over, whichever way: its progress gauges go. Idempotent. */
        @Override
        public synchronized void close() {
            if (closed) {
                return;
            }
            closed = true;
            synchronized (seriesTogether) {
                running.dec();
                for (Gauge g : new Gauge[] {
                    processed,
                    remaining,
                    total,
                    transferRate,
                    diskTransferRate,
                    dirtyRate,
                    round,
                    expectedDowntime,
                    wire
                }) {
                    g.remove(vm);
                }
            }
        }
    }

    /**
     * This host's VMs by state ({@code running}, {@code paused}, {@code fenced}, ...), asked at each
     * scrape. Call once.
     */
    public void vmsByState(Supplier<Map<String, Integer>> counts) {
        GaugeWithCallback.builder()
                .name("ferry_agent_vms")
                .help("VMs on this host by state: running, paused, stopped, migrating_out, incoming, failed, fenced.")
                .labelNames("state")
                .callback(cb -> counts.get().forEach((state, n) -> cb.call(n, state)))
                .register(registry);
    }

    /** Migrations this host is receiving now, asked at each scrape. Call once. */
    public void incoming(IntSupplier receiving) {
        GaugeWithCallback.builder()
                .name("ferry_vmi_migrations_incoming")
                .help("Migrations this agent is receiving now (prepared, not yet committed or discarded).")
                .callback(cb -> cb.call(receiving.getAsInt()))
                .register(registry);
    }

    /**
     * A cluster agent's standing and fences, asked at each scrape. Call once, for a cluster member
     * only.
     *
     * @param state the member's state (latent, joining, member, suspended, fenced, closed)
     * @param states every state it can be in, so each has its series (0 or 1)
     * @param fences how many times the member fenced
     */
    public void cluster(Supplier<String> state, java.util.List<String> states, LongSupplier fences) {
        GaugeWithCallback.builder()
                .name("ferry_agent_cluster_state")
                .help(
                        "This agent's standing in the cluster, 1 for the state it is in: latent, joining, member, suspended"
                                + " (lost ZooKeeper; guests run on while the evidence lasts), fenced (guests frozen until the"
                                + " cluster says whose they are), closed.")
                .labelNames("state")
                .callback(cb -> {
                    String now = state.get();
                    for (String s : states) {
                        cb.call(s.equals(now) ? 1 : 0, s);
                    }
                })
                .register(registry);
        CounterWithCallback.builder()
                .name("ferry_agent_fences_total")
                .help("Times this agent fenced: it lost its ZooKeeper session's evidence and froze every guest.")
                .callback(cb -> cb.call(fences.getAsLong()))
                .register(registry);
    }
}
