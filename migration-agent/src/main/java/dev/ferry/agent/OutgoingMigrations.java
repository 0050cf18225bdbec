package dev.ferry.agent;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.logs.LogContext;
import dev.ferry.metrics.AgentMetrics;
import dev.ferry.migration.MigrationException;
import dev.ferry.migration.policy.ConvergencePolicy;
import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.migration.precopy.SenderFaults;
import dev.ferry.proto.agent.CancelMigrationResponse;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.OnTimeout;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.agent.PrepareIncomingResponse;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.vm.VmState;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import io.grpc.Status;
import java.time.Duration;
import java.util.UUID;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The source half of this agent: runs Migrate requests, one at a time per VM. */
final class OutgoingMigrations {
    private static final Logger log = LoggerFactory.getLogger(OutgoingMigrations.class);
    static final int DEFAULT_STREAMS =
            Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors()));

    private final VmRegistry registry;
    private final Transport transport;
    private final CommitProvider commits;
    private final PreCopySender.Timeouts timeouts;
    private final AgentMetrics metrics;
    private final MigrationRecords records;
    private volatile SenderFaults faults = SenderFaults.NONE;

    OutgoingMigrations(
            VmRegistry registry,
            Transport transport,
            CommitProvider commits,
            PreCopySender.Timeouts timeouts,
            AgentMetrics metrics,
            MigrationRecords records) {
        this.records = records;
        this.registry = registry;
        this.transport = transport;
        this.commits = commits;
        this.timeouts = timeouts;
        this.metrics = metrics;
    }

    /** Test only, through {@link Agent#injectSenderFaults}. */
    void faults(SenderFaults f) {
        faults = f;
    }

    /** Checks a request and claims the VM for it; the migration itself runs in {@link Claimed#run}. */
    Claimed claim(MigrateRequest req) throws AgentException {
        if (req.getTargetHost().isBlank()) {
            throw new AgentException(Status.Code.INVALID_ARGUMENT, "migrate needs a target host");
        }
        if (req.getTargetHost().equals(registry.hostId())) {
            throw new AgentException(
                    Status.Code.INVALID_ARGUMENT, "VM '" + req.getVm() + "' is already on " + registry.hostId());
        }
        Endpoint target;
        try {
            target = Endpoint.parse(req.getTargetEndpoint());
        } catch (IllegalArgumentException e) {
            throw new AgentException(Status.Code.INVALID_ARGUMENT, "bad target endpoint: " + e.getMessage());
        }
        PreCopySender.Options options = options(req.getOptions());
        var caps = registry.driver().capabilities();
        if (options.mode() == dev.ferry.proto.migration.TransferMode.TRANSFER_MODE_PRECOPY && !caps.dirtyTracking()) {
            throw new AgentException(
                    Status.Code.FAILED_PRECONDITION,
                    "this host cannot track guest writes, so Ferry's " + "pre-copy is refused: "
                            + caps.dirtyTrackingDetail()
                            + "; --mode qemu-native still works where QEMU's own migration keeps every write (KVM, or QEMU 9.0 or later)");
        }
        if (options.mode() == dev.ferry.proto.migration.TransferMode.TRANSFER_MODE_HYPERVISOR_NATIVE
                && !caps.hypervisorNativeMigration()) {
            throw new AgentException(
                    Status.Code.FAILED_PRECONDITION,
                    "the " + registry.driver().name()
                            + " driver has no hypervisor-native migration; use --mode precopy");
        }
        ManagedVm m = registry.get(req.getVm());
        synchronized (m) {
            if (m.state() != VmState.VM_STATE_RUNNING) {
                throw new AgentException(
                        Status.Code.FAILED_PRECONDITION,
                        "VM '" + req.getVm() + "' is "
                                + m.state().name().replace("VM_STATE_", "").toLowerCase()
                                + "; only a running VM can be migrated live");
            }
            if (options.mode() == dev.ferry.proto.migration.TransferMode.TRANSFER_MODE_HYPERVISOR_NATIVE) {
                // The hypervisor's own dirty tracking decides which pages cross; where it is known to
                // miss writes, the guest would run on at the destination with stale memory.
                java.util.Optional<String> hazard = m.instance().hypervisorNativeMigrationHazard();
                if (hazard.isPresent()) {
                    throw new AgentException(
                            Status.Code.FAILED_PRECONDITION,
                            "VM '" + req.getVm() + "' cannot move with --mode qemu-native on " + registry.hostId()
                                    + ": " + hazard.get());
                }
            }
            m.state(VmState.VM_STATE_MIGRATING_OUT, "migrating to " + req.getTargetHost());
        }
        return new Claimed(m, req, target, options);
    }

    static PreCopySender.Options options(MigrationOptions o) throws AgentException {
        try {
            Duration downtime = Duration.ofMillis(o.getDowntimeMs() == 0 ? 300 : o.getDowntimeMs());
            ConvergencePolicy.Settings d = ConvergencePolicy.Settings.defaults();
            ConvergencePolicy.Settings policy = new ConvergencePolicy.Settings(
                    downtime,
                    o.getMaxRounds() == 0 ? d.maxRounds() : o.getMaxRounds(),
                    o.getMaxTimeMs() == 0 ? d.maxTime() : Duration.ofMillis(o.getMaxTimeMs()),
                    d.stallRounds(),
                    o.getOnTimeout() == OnTimeout.ON_TIMEOUT_CANCEL
                            ? ConvergencePolicy.OnTimeout.CANCEL
                            : ConvergencePolicy.OnTimeout.FORCE_SWITCHOVER);
            return new PreCopySender.Options(
                    o.getStreams() == 0 ? DEFAULT_STREAMS : o.getStreams(),
                    o.getMaxBandwidthBytesPerSec(),
                    o.getVerify(),
                    policy,
                    o.getMode(),
                    PreCopySender.Timeouts.defaults());
        } catch (IllegalArgumentException e) {
            throw new AgentException(Status.Code.INVALID_ARGUMENT, e.getMessage());
        }
    }

    /** A VM claimed for a migration. */
    final class Claimed {
        private final ManagedVm vm;
        private final MigrateRequest req;
        private final Endpoint target;
        private final PreCopySender.Options options;

        Claimed(ManagedVm vm, MigrateRequest req, Endpoint target, PreCopySender.Options options) {
            this.vm = vm;
            this.req = req;
            this.target = target;
            this.options = options;
        }

        /**
         * Runs the migration to its end; every event, the terminal one last, goes to {@code events}.
         * Whatever happens, it ends with a terminal event and the VM no longer MIGRATING_OUT: a
         * migration that ended abnormally used to leave both (the caller waiting forever, the VM
         * claimed for good).
         */
        MigrationSummary run(Consumer<MigrationEvent> events) {
            String migrationId =
                    req.getRequestId().isBlank() ? UUID.randomUUID().toString() : req.getRequestId();
            VmInstance instance = vm.instance();
            PreCopySender[] sender = {null};
            // Its metrics hear every event on the way to the caller, and the summary at the end; its
            // log lines carry the VM, the migration and the target as fields (--log-format json).
            try (LogContext.Scope fields = LogContext.with(
                            LogContext.VM,
                            vm.name,
                            LogContext.MIGRATION,
                            migrationId,
                            LogContext.TARGET,
                            req.getTargetHost());
                    AgentMetrics.OutgoingMigration measured = metrics.outgoing(vm.name, ramBytes(instance))) {
                ProgressMetrics progress = new ProgressMetrics(measured, pageSize(instance));
                // Its record hears every event too, and keeps it after the end (`ferry report`).
                Consumer<MigrationEvent> record = records.recorder(req, migrationId, registry.hostId());
                Consumer<MigrationEvent> both = e -> {
                    try {
                        record.accept(e);
                    } catch (RuntimeException ex) {
                        // A record is for reading later: it never stops the migration or its caller's events.
                        log.warn("migration {}: its record missed an event: {}", migrationId, ex.toString());
                    }
                    events.accept(e);
                };
                MigrationSummary s = runToTheEnd(migrationId, instance, sender, progress.observing(both));
                progress.ended(s, sender[0] != null && sender[0].memoryMismatch());
                return s;
            }
        }

        private long ramBytes(VmInstance instance) {
            return instance != null ? instance.memory().sizeBytes() : vm.spec.getMemoryBytes();
        }

        private static int pageSize(VmInstance instance) {
            return instance != null ? instance.memory().pageSize() : 4096;
        }

        private MigrationSummary runToTheEnd(
                String migrationId, VmInstance instance, PreCopySender[] sender, Consumer<MigrationEvent> events) {
            try {
                return run(migrationId, instance, sender, events);
            } catch (RuntimeException | Error e) {
                log.error("migration {} of {} ended abnormally", migrationId, vm.name, e);
                MigrationStep step = sender[0] == null ? MigrationStep.MIGRATION_STEP_PREPARE : sender[0].currentStep();
                MigrationException me = new MigrationException(step, "internal error: " + e, e);
                boolean commitStarted = sender[0] != null && sender[0].commitStarted();
                try {
                    settleAfterFailure(vm, instance, me, commitStarted);
                } catch (RuntimeException | Error again) {
                    log.error("VM {}: cannot settle after the abnormal end of its migration", vm.name, again);
                }
                synchronized (vm) {
                    if (vm.state() == VmState.VM_STATE_MIGRATING_OUT) {
                        vm.state(VmState.VM_STATE_FAILED, me.getMessage());
                    }
                }
                MigrationSummary s = MigrationSummary.newBuilder()
                        .setMigrationId(migrationId)
                        .setVm(vm.name)
                        .setSource(registry.hostId())
                        .setTarget(req.getTargetHost())
                        .setStatus(MigrationPhase.MIGRATION_PHASE_FAILED)
                        .setFailedStep(step)
                        .setError(me.getMessage())
                        .build();
                events.accept(MigrationEvent.newBuilder()
                        .setPhase(MigrationPhase.MIGRATION_PHASE_FAILED)
                        .setMigrationId(migrationId)
                        .setSummary(s)
                        .setMessage(me.getMessage())
                        .build());
                return s;
            }
        }

        private MigrationSummary run(
                String migrationId, VmInstance instance, PreCopySender[] created, Consumer<MigrationEvent> events) {
            PreCopySender.Options opts = new PreCopySender.Options(
                    options.lanes(),
                    options.maxBandwidth(),
                    options.verify(),
                    options.policy(),
                    options.mode(),
                    timeouts);
            try (AgentClient targetAgent =
                    new AgentClient(transport, req.getTargetHost(), target, Duration.ofSeconds(60))) {
                PreCopySender sender = new PreCopySender(
                        new PreCopySender.Parties(
                                migrationId, vm.name, registry.hostId(), req.getTargetHost(), vm.epoch()),
                        instance,
                        opts,
                        transport,
                        new PreCopySender.TargetPreparer() {
                            @Override
                            public PrepareIncomingResponse prepare(PrepareIncomingRequest prepare)
                                    throws MigrationException {
                                try {
                                    return targetAgent.prepareIncoming(prepare);
                                } catch (AgentCallException e) {
                                    throw new MigrationException(
                                            MigrationStep.MIGRATION_STEP_PREPARE, e.getMessage(), e);
                                }
                            }

                            @Override
                            public void abandon(String id, String reason) {
                                try {
                                    targetAgent.cancelIncoming(vm.name, id, reason);
                                } catch (AgentCallException e) {
                                    log.debug(
                                            "destination {} did not take the abandon of {}: {}",
                                            req.getTargetHost(),
                                            id,
                                            e.getMessage());
                                }
                            }
                        },
                        commits.outgoing(targetAgent),
                        events::accept);
                created[0] = sender;
                sender.injectFaults(faults);
                vm.migration(sender);
                log.info(
                        "migrating {} to {} at {} (migration {}, {} streams{})",
                        vm.name,
                        req.getTargetHost(),
                        target,
                        migrationId,
                        opts.lanes(),
                        opts.verify() ? ", verify" : "");
                try {
                    MigrationSummary s = sender.run();
                    long released = System.nanoTime();
                    registry.release(vm);
                    log.info(
                            "migrated {} to {}: {} ms total, {} ms downtime, {} rounds, {} MiB on the wire; source released in {} ms",
                            vm.name,
                            req.getTargetHost(),
                            s.getTotalMs(),
                            s.getDowntimeMs(),
                            s.getRounds(),
                            s.getBytesTransferred() >> 20,
                            (System.nanoTime() - released) / 1_000_000);
                    events.accept(MigrationEvent.newBuilder()
                            .setPhase(MigrationPhase.MIGRATION_PHASE_COMPLETED)
                            .setMigrationId(migrationId)
                            .setSummary(s)
                            .build());
                    return s;
                } catch (MigrationException e) {
                    MigrationSummary s = sender.failureSummary(e);
                    settleAfterFailure(vm, instance, e, sender.commitStarted());
                    events.accept(MigrationEvent.newBuilder()
                            .setPhase(s.getStatus())
                            .setMigrationId(migrationId)
                            .setSummary(s)
                            .setMessage(e.getMessage())
                            .build());
                    return s;
                } finally {
                    vm.migration(null);
                }
            }
        }
    }

    /**
     * After a failed migration the VM is running again here; or paused because the commit outcome
     * is unknown; or paused because resuming failed (a hypervisor that stopped answering), in which
     * case resuming is retried in the background while the hypervisor lives: before the commit,
     * the source is the only owner, and leaving it paused would be an outage nobody asked for.
     */
    private void settleAfterFailure(ManagedVm m, VmInstance instance, MigrationException e, boolean commitStarted) {
        synchronized (m) {
            if (m.state() == VmState.VM_STATE_FENCED) {
                // A fence cut the migration short: the VM waits, frozen, for the cluster to say whose it
                // is (Agent.reclaim), which also undoes the migration's pause if it is still ours.
                return;
            }
            String what = "last migration " + (e.cancelled() ? "cancelled" : "failed") + ": " + e.getMessage();
            switch (instance.state()) {
                case RUNNING -> m.state(VmState.VM_STATE_RUNNING, what);
                case PAUSED -> m.state(VmState.VM_STATE_PAUSED, e.getMessage());
                default -> {
                    if (m.state() != VmState.VM_STATE_FAILED) {
                        m.state(VmState.VM_STATE_FAILED, what);
                    }
                }
            }
        }
        if (instance.state() == dev.ferry.hypervisor.InstanceState.PAUSED && !commitStarted) {
            Thread.ofPlatform()
                    .daemon()
                    .name("ferry-resume-" + m.name)
                    .start(LogContext.inherit(() -> resumeUntilDone(m, instance, e)));
        }
    }

    private void resumeUntilDone(ManagedVm m, VmInstance instance, MigrationException cause) {
        long deadline = System.nanoTime() + java.util.concurrent.TimeUnit.MINUTES.toNanos(10);
        while (System.nanoTime() < deadline) {
            synchronized (m) {
                if (m.instance() != instance || m.state() != VmState.VM_STATE_PAUSED) {
                    return;
                }
            }
            try {
                instance.resume();
                synchronized (m) {
                    m.state(VmState.VM_STATE_RUNNING, "resumed after a failed migration: " + cause.getMessage());
                }
                log.info("VM {} resumed after a failed migration", m.name);
                return;
            } catch (HypervisorException ex) {
                log.warn("VM {}: resume after a failed migration did not work yet: {}", m.name, ex.getMessage());
            }
            switch (instance.state()) {
                case FAILED, STOPPED, CLOSED -> {
                    return;
                }
                default -> {}
            }
            try {
                Thread.sleep(1000);
            } catch (InterruptedException ie) {
                return;
            }
        }
    }

    /** Changes the limits of {@code vmName}'s outgoing migration (`ferry migrate set`). */
    PreCopySender.Limits setLimits(String vmName, java.time.Duration downtime, Long bytesPerSecond)
            throws AgentException {
        PreCopySender s = registry.get(vmName).migration();
        if (s == null) {
            throw new AgentException(Status.Code.FAILED_PRECONDITION, "VM '" + vmName + "' is not migrating");
        }
        try {
            return s.setLimits(downtime, bytesPerSecond);
        } catch (IllegalArgumentException e) {
            throw new AgentException(Status.Code.INVALID_ARGUMENT, e.getMessage());
        }
    }

    /** The records of this host's outgoing migrations (`ferry report`). */
    java.util.List<dev.ferry.proto.agent.MigrationRecord> records(String migrationId, String vm) {
        return records.find(migrationId, vm);
    }

    CancelMigrationResponse cancel(String vmName) throws AgentException {
        ManagedVm m;
        try {
            m = registry.get(vmName);
        } catch (AgentException e) {
            // A cancel that comes just after the commit finds the VM gone from here; say what became
            // of it rather than only that it is unknown (the operator asked about a migration).
            java.util.Optional<String> gone = movedAway(vmName);
            if (gone.isPresent()) {
                return CancelMigrationResponse.newBuilder()
                        .setCancelled(false)
                        .setMessage("too late: " + gone.get())
                        .build();
            }
            throw e;
        }
        PreCopySender s = m.migration();
        if (s == null) {
            throw new AgentException(Status.Code.FAILED_PRECONDITION, "VM '" + vmName + "' is not migrating");
        }
        boolean ok = s.cancel();
        return CancelMigrationResponse.newBuilder()
                .setCancelled(ok)
                .setMessage(
                        ok
                                ? "cancelling the migration of " + vmName
                                : "too late: the migration of " + vmName + " has committed and will complete")
                .build();
    }

    /**
     * What the newest kept record says of a VM no longer here, when it left by a completed migration:
     * "the migration of web to host-b completed at ..." (history, true whatever happened since).
     */
    private java.util.Optional<String> movedAway(String vmName) {
        return records.find("", vmName).stream()
                .findFirst()
                .filter(r -> r.hasSummary() && r.getSummary().getStatus() == MigrationPhase.MIGRATION_PHASE_COMPLETED)
                .map(r -> "the migration of " + vmName + " to " + r.getTarget() + " completed at "
                        + java.time.Instant.ofEpochMilli(r.getFinishedAtMs()) + "; " + vmName
                        + " is no longer on this host");
    }
}
