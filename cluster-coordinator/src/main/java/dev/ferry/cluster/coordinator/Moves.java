package dev.ferry.cluster.coordinator;

import static dev.ferry.cluster.coordinator.IntentStep.KEEP;
import static dev.ferry.cluster.coordinator.IntentStep.STAY;
import static dev.ferry.cluster.coordinator.IntentStep.advance;
import static dev.ferry.cluster.coordinator.IntentStep.done;
import static dev.ferry.cluster.coordinator.IntentStep.failed;
import static dev.ferry.cluster.coordinator.IntentStep.refuse;
import static dev.ferry.cluster.coordinator.IntentStep.set;

import dev.ferry.agent.MigrationRecorder;
import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.coordinator.IntentStep.Fresh;
import dev.ferry.cluster.coordinator.IntentStep.Step;
import dev.ferry.cluster.policy.DrainBandwidth;
import dev.ferry.cluster.policy.Placement;
import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationRecord;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.VmRequest;
import dev.ferry.proto.cluster.DesiredState;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.Maintenance;
import dev.ferry.proto.cluster.MoveState;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmMove;
import dev.ferry.proto.cluster.VmPhase;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.coordinator.DrainProgress;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.zookeeper.CreateMode;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Live migration through the cluster, and host drain and activation.
 *
 * <p>A migration: intent, checks (the VM runs, its host is up, the target is up, not in
 * maintenance and has room), the record marked MIGRATING with the intent, then the source agent's
 * migration with its progress relayed. The commit itself is the source's write in ZooKeeper; this
 * class only reads the record afterwards to say how it ended. A new leader resuming a migration
 * asks the source again with the same migration id: the source either is still migrating it (then
 * the leader waits for its end), or has finished it (the record says so), or never began it (then
 * it runs now).
 *
 * <p>A drain: the host goes into maintenance (no new placements), then every VM it owns moves,
 * {@code parallel} at a time: running ones live, each as a MIGRATE intent of its own named after
 * the drain with the drain's options and its share of the drain's total bandwidth ({@link
 * DrainBandwidth}), stopped ones by ownership only. Progress is kept in the drain intent, so a new leader
 * continues where the old one was.
 */
final class Moves {
    private static final Logger log = LoggerFactory.getLogger(Moves.class);
    private static final Duration POLL = Duration.ofMillis(250);

    private final IntentStep steps;
    private final Intents intents;
    private final Claims claims;
    private final ClusterView view;
    private final Capacity capacity;
    private final AgentActions orders;
    private final Tx.Factory writes;
    private final WriteGuard guard;
    private final ClusterStore store;
    private final HostLosses losses;
    private final Clocks clocks;
    private final MigrationReports reports;

    Moves(
            IntentStep steps,
            Intents intents,
            Claims claims,
            ClusterView view,
            Capacity capacity,
            AgentActions orders,
            Tx.Factory writes,
            HostLosses losses,
            MigrationReports reports) {
        this.steps = steps;
        this.intents = intents;
        this.claims = claims;
        this.view = view;
        this.capacity = capacity;
        this.orders = orders;
        this.writes = writes;
        this.guard = writes.guard();
        this.store = guard.store();
        this.losses = losses;
        this.clocks = writes.clocks();
        this.reports = reports;
    }

    // ---- migrate

    Intent migrate(IntentRun run, Versioned<Intent> cur) throws Exception {
        String name = cur.value().getVm();
        return steps.claimed(cur, name, held -> {
            Versioned<Intent> marked =
                    steps.run(held, name, IntentStep.Read.PLAIN, IntentStep.CONFLICTS, this::decideStart);
            if (!Intents.isOpen(marked.value())) {
                return marked.value();
            }
            Intent running = marked.value();
            // What this leader hears of the migration becomes its record (`ferry report`).
            MigrationRecorder heard = new MigrationRecorder(
                    running.getId(),
                    name,
                    running.getSource(),
                    running.getHost(),
                    running.getMigration(),
                    clocks::wallMillis);
            MigrationSummary summary = runOrAwait(run, running, heard);
            keepReport(running, heard, summary);
            // How it ended is what the record says, whatever the source reported: the commit is the
            // source's own write, so read past any lag of our server.
            return steps.run(
                            marked,
                            name,
                            IntentStep.Read.SYNCED,
                            IntentStep.CONFLICTS,
                            (fresh, i) -> decideEnd(fresh, i, summary))
                    .value();
        });
    }

    /** A new migration: checks, the target, and the record marked MIGRATING with the intent. */
    private Step decideStart(Fresh fresh, Intent i) throws Exception {
        String name = i.getVm();
        if (!fresh.exists()) {
            return refuse(i, CoordinatorException.noVm(name).getMessage());
        }
        if (i.getState() != IntentState.INTENT_STATE_PENDING) {
            return STAY; // marked already: the migration runs (or ran) on the source
        }
        VmRecord r = fresh.record();
        // A refusal names the host the VM stays on (the operator reads "the VM stays on ...").
        Intent from = i.toBuilder().setSource(r.getOwner()).build();
        String problem = checkMigration(r, fresh.lock(), i.getHost());
        if (problem == null) {
            problem = dirtyTrackingProblem(r, i.getMigration().getMode());
        }
        if (problem != null) {
            return refuse(from, problem);
        }
        String target = i.getHost();
        if (target.isEmpty()) {
            Placement.Decision d = capacity.placeAndReserve(r.getSpec(), Set.of(r.getOwner()));
            if (d instanceof Placement.NoHost n) {
                return refuse(from, "cannot migrate " + name + ": " + n.reason());
            }
            target = ((Placement.Placed) d).host();
        } else {
            String why = capacity.fitOn(r.getSpec(), target);
            if (why != null) {
                return refuse(from, "cannot migrate " + name + " to " + target + ": " + why);
            }
        }
        return advance(
                        set(
                                fresh.versioned(),
                                r.toBuilder()
                                        .setPhase(VmPhase.VM_PHASE_MIGRATING)
                                        .setIntentId(i.getId())
                                        .build()),
                        i.toBuilder()
                                .setState(IntentState.INTENT_STATE_RUNNING)
                                .setSource(r.getOwner())
                                .setFromEpoch(r.getEpoch())
                                .setHost(target)
                                .build())
                .releasing(() -> capacity.settle(name));
    }

    /** Why {@code r} (with its run lock {@code lock}) cannot migrate to {@code target} (empty: anywhere), or null. */
    private String checkMigration(VmRecord r, Versioned<RunningRecord> lock, String target) {
        String name = r.getSpec().getName();
        boolean running = r.getDesired() == DesiredState.DESIRED_STATE_RUNNING
                && lock != null
                && lock.value().getHostId().equals(r.getOwner())
                && lock.value().getEpoch() == r.getEpoch();
        if (!running) {
            // Say which half is missing: "desired running, running" alone reads as a contradiction
            // when the record and the run lock disagree.
            String copy = lock == null
                    ? "no host runs it"
                    : lock.value().getHostId().equals(r.getOwner())
                                    && lock.value().getEpoch() == r.getEpoch()
                            ? "it runs on " + r.getOwner()
                            : "its record names " + r.getOwner() + " at epoch " + r.getEpoch() + " but "
                                    + lock.value().getHostId() + " holds its run lock at epoch "
                                    + lock.value().getEpoch();
            return "VM '" + name + "' is not running (" + describe(r) + "; " + copy
                    + "); only a running VM can be migrated live";
        }
        if (!view.alive(r.getOwner())) {
            return "VM '" + name + "' is on " + r.getOwner() + ", which is not alive in the cluster";
        }
        if (!target.isEmpty()) {
            if (target.equals(r.getOwner())) {
                return "VM '" + name + "' is already on " + target;
            }
            if (!view.registered(target)) {
                return knownHost(target)
                        ? "host " + target + " is unreachable: it is not alive in the cluster"
                        : CoordinatorException.noHost(target).getMessage();
            }
            if (view.inMaintenance(target)) {
                return "host " + target + " is in maintenance";
            }
        }
        return null;
    }

    /**
     * Ferry's pre-copy needs the source to track the guest's writes: refused here, before the
     * record is marked, rather than by the source agent after.
     */
    private String dirtyTrackingProblem(VmRecord r, dev.ferry.proto.migration.TransferMode mode) {
        if (mode == dev.ferry.proto.migration.TransferMode.TRANSFER_MODE_HYPERVISOR_NATIVE) {
            return null;
        }
        HostRecord source = view.hostRecord(r.getOwner());
        if (source == null || source.getPrecopy() || source.getDirtyTracking().isEmpty()) {
            return null; // gone (checked elsewhere), able, or an agent that does not report it
        }
        return "cannot migrate " + r.getSpec().getName() + " with pre-copy: " + r.getOwner()
                + " cannot track guest writes (" + source.getDirtyTracking() + "); use --mode qemu-native where"
                + " that is safe";
    }

    static String describe(VmRecord r) {
        String phase = r.getPhase().name().replace("VM_PHASE_", "").toLowerCase();
        return "desired " + r.getDesired().name().replace("DESIRED_STATE_", "").toLowerCase() + ", " + phase
                + (r.getFailureReason().isEmpty() ? "" : ": " + r.getFailureReason());
    }

    boolean knownHost(String host) {
        if (view.registered(host) || view.inMaintenance(host) || losses.lostAtMillis(host) != null) {
            return true;
        }
        return view.vms().values().stream().anyMatch(v -> v.value().getOwner().equals(host));
    }

    /** Runs the migration on the source (or waits for the one it already runs); the summary it ended with. */
    private MigrationSummary runOrAwait(IntentRun run, Intent i, MigrationRecorder heard) throws Exception {
        String name = i.getVm();
        Versioned<VmRecord> rec = freshVm(name);
        if (rec != null && committed(rec.value(), i)) {
            return syntheticSummary(i, MigrationPhase.MIGRATION_PHASE_COMPLETED, "");
        }
        HostRecord source = view.hostRecord(i.getSource());
        HostRecord target = view.hostRecord(i.getHost());
        if (source == null) {
            return syntheticSummary(
                    i, MigrationPhase.MIGRATION_PHASE_FAILED, i.getSource() + " is not alive in the cluster");
        }
        if (target == null) {
            return syntheticSummary(
                    i,
                    MigrationPhase.MIGRATION_PHASE_FAILED,
                    "host " + i.getHost() + " is unreachable: it is not alive in the cluster");
        }
        MigrateRequest req = MigrateRequest.newBuilder()
                .setVm(name)
                .setTargetHost(i.getHost())
                .setTargetEndpoint(target.getEndpoint())
                .setOptions(i.getMigration())
                .setRequestId(i.getId())
                .build();
        log.info("migrating {} from {} to {} (intent {})", name, i.getSource(), i.getHost(), i.getId());
        try {
            MigrationEvent last = orders.migrate(source, req, e -> {
                heard.accept(e);
                run.emit(e);
            });
            return last.getSummary();
        } catch (AgentCallException e) {
            if (e.code() == Status.Code.FAILED_PRECONDITION && e.getMessage().contains("is migrating")) {
                return awaitSource(i, "the source was already migrating it");
            }
            if (e.unreachable() || e.code() == Status.Code.CANCELLED || e.code() == Status.Code.INTERNAL) {
                return awaitSource(i, e.getMessage());
            }
            return syntheticSummary(i, MigrationPhase.MIGRATION_PHASE_FAILED, e.getMessage());
        }
    }

    /**
     * Keeps the migration's record in the cluster: what this leader heard, when it heard the end;
     * else (it lost the stream, or took over from a leader that had it) the source's own record,
     * which has every round; else what it heard with the summary it ended with, and a message
     * saying that rounds are missing.
     */
    private void keepReport(Intent i, MigrationRecorder heard, MigrationSummary summary) {
        MigrationRecord r = heard.finished().orElse(null);
        if (r == null) {
            r = sourceRecord(i).orElse(null);
        }
        if (r == null) {
            heard.accept(MigrationEvent.newBuilder()
                    .setMessage("the coordinator did not hear every round of this migration, and " + i.getSource()
                            + " could not give its record: rounds may be missing here")
                    .build());
            heard.accept(MigrationEvent.newBuilder()
                    .setPhase(summary.getStatus())
                    .setSummary(summary)
                    .build());
            r = heard.now();
        }
        reports.keep(r);
    }

    /** The source's finished record of migration {@code i}, if it can be asked and has one. */
    private Optional<MigrationRecord> sourceRecord(Intent i) {
        HostRecord source = view.hostRecord(i.getSource());
        if (source == null) {
            return Optional.empty();
        }
        try {
            return orders
                    .migrationRecords(
                            source,
                            dev.ferry.proto.agent.MigrationRecordsRequest.newBuilder()
                                    .setMigrationId(i.getId())
                                    .build())
                    .stream()
                    .filter(r -> r.getMigrationId().equals(i.getId()) && r.hasSummary())
                    .findFirst();
        } catch (AgentCallException e) {
            log.info("migration {}: {} could not give its record: {}", i.getId(), i.getSource(), e.getMessage());
            return Optional.empty();
        }
    }

    /** The migration runs on the source without us watching: wait until it ends, by the source's word or the record's. */
    private MigrationSummary awaitSource(Intent i, String why) throws Exception {
        log.info("migration {} of {}: waiting for the source to finish ({})", i.getId(), i.getVm(), why);
        while (true) {
            Versioned<VmRecord> rec = freshVm(i.getVm());
            if (rec == null) {
                return syntheticSummary(i, MigrationPhase.MIGRATION_PHASE_FAILED, "the VM was deleted");
            }
            if (committed(rec.value(), i)) {
                return syntheticSummary(i, MigrationPhase.MIGRATION_PHASE_COMPLETED, "");
            }
            HostRecord source = view.hostRecord(i.getSource());
            if (source == null) {
                return syntheticSummary(i, MigrationPhase.MIGRATION_PHASE_FAILED, i.getSource() + " left the cluster");
            }
            try {
                VmStatus s = orders.getVm(source, i.getVm());
                if (s.getState() != VmState.VM_STATE_MIGRATING_OUT) {
                    guard.pause(POLL);
                    Versioned<VmRecord> after = freshVm(i.getVm());
                    return syntheticSummary(
                            i,
                            after != null && committed(after.value(), i)
                                    ? MigrationPhase.MIGRATION_PHASE_COMPLETED
                                    : MigrationPhase.MIGRATION_PHASE_FAILED,
                            s.getReason().isEmpty() ? why : s.getReason());
                }
            } catch (AgentCallException e) {
                if (e.code() == Status.Code.NOT_FOUND) {
                    guard.pause(POLL);
                    Versioned<VmRecord> after = freshVm(i.getVm());
                    return syntheticSummary(
                            i,
                            after != null && committed(after.value(), i)
                                    ? MigrationPhase.MIGRATION_PHASE_COMPLETED
                                    : MigrationPhase.MIGRATION_PHASE_FAILED,
                            "the source no longer has it");
                }
            }
            guard.pause(POLL);
        }
    }

    private static boolean committed(VmRecord r, Intent i) {
        return r.getOwner().equals(i.getHost()) && r.getEpoch() == i.getFromEpoch() + 1;
    }

    static MigrationSummary syntheticSummary(Intent i, MigrationPhase status, String error) {
        MigrationSummary.Builder b = MigrationSummary.newBuilder()
                .setMigrationId(i.getId())
                .setVm(i.getVm())
                .setSource(i.getSource())
                .setTarget(i.getHost())
                .setStatus(status)
                .setError(error);
        if (status == MigrationPhase.MIGRATION_PHASE_COMPLETED) {
            b.setEpoch(i.getFromEpoch() + 1);
        }
        return b.build();
    }

    /** How it ended is what the record says, whatever the source reported. */
    private static Step decideEnd(Fresh fresh, Intent i, MigrationSummary summary) {
        if (!fresh.exists()) {
            return failed(i, KEEP, "VM '" + i.getVm() + "' was deleted");
        }
        VmRecord r = fresh.record();
        MigrationSummary s = summary;
        if (committed(r, i)) {
            if (s.getStatus() != MigrationPhase.MIGRATION_PHASE_COMPLETED) {
                s = s.toBuilder()
                        .setStatus(MigrationPhase.MIGRATION_PHASE_COMPLETED)
                        .setEpoch(r.getEpoch())
                        .build();
            }
            return done(
                    i.toBuilder().setSummary(s).build(),
                    set(
                            fresh.versioned(),
                            r.toBuilder()
                                    .setPhase(VmPhase.VM_PHASE_RUNNING)
                                    .setIntentId("")
                                    .build()),
                    "migrated " + i.getVm() + " from " + i.getSource() + " to " + i.getHost() + " (epoch "
                            + r.getEpoch() + ")");
        }
        IntentStep.VmChange change = KEEP;
        if (r.getIntentId().equals(i.getId())) {
            change = set(
                    fresh.versioned(),
                    r.toBuilder()
                            .setPhase(VmPhase.VM_PHASE_RUNNING)
                            .setIntentId("")
                            .setFailureReason(s.getError().isEmpty() ? "" : "last migration failed: " + s.getError())
                            .build());
        }
        String text = s.getError().isEmpty() ? "the migration of " + i.getVm() + " did not complete" : s.getError();
        if (s.getStatus() == MigrationPhase.MIGRATION_PHASE_COMPLETED) {
            s = s.toBuilder().setStatus(MigrationPhase.MIGRATION_PHASE_FAILED).build();
        }
        return failed(i.toBuilder().setSummary(s).build(), change, text);
    }

    // ---- drain

    Intent drain(IntentRun run, Versioned<Intent> cur) throws Exception {
        Intent i = cur.value();
        String host = i.getHost();
        long start = System.nanoTime();
        if (i.getState() == IntentState.INTENT_STATE_PENDING) {
            if (!knownHost(host)) {
                return intents.fail(cur, CoordinatorException.noHost(host).getMessage());
            }
            List<VmMove> moves = new ArrayList<>();
            for (Versioned<VmRecord> v : view.vms().values().stream()
                    .sorted(java.util.Comparator.comparing(
                            v -> v.value().getSpec().getName()))
                    .toList()) {
                VmRecord r = v.value();
                if (!r.getOwner().equals(host)) {
                    continue;
                }
                Versioned<RunningRecord> lock = view.running(r.getSpec().getName());
                boolean live = r.getDesired() == DesiredState.DESIRED_STATE_RUNNING
                        && lock != null
                        && lock.value().getHostId().equals(host);
                moves.add(VmMove.newBuilder()
                        .setVm(r.getSpec().getName())
                        .setState(MoveState.MOVE_STATE_PENDING)
                        .setCold(!live)
                        .build());
            }
            Tx tx = writes.tx();
            if (store.maintenance(host).isEmpty()) {
                tx.op(store.create(
                        ClusterPaths.maintenance(host),
                        Maintenance.newBuilder()
                                .setSchemaVersion(Records.SCHEMA_VERSION)
                                .setHostId(host)
                                .setReason("drain")
                                .setIntentId(i.getId())
                                .setSinceMs(clocks.wallMillis())
                                .build(),
                        CreateMode.PERSISTENT));
            }
            cur = tx.setIntent(
                    cur,
                    i.toBuilder()
                            .setState(IntentState.INTENT_STATE_RUNNING)
                            .clearMoves()
                            .addAllMoves(moves)
                            .setParallel(Math.max(1, i.getParallel()))
                            .build());
            tx.commit();
            i = cur.value();
            log.info("draining {}: {} VM(s) to move, {} at a time", host, moves.size(), i.getParallel());
        }
        progress(run, i, start, "draining " + host);
        Map<String, CompletableFuture<Intent>> inFlight = new HashMap<>();
        // Each running live move's bandwidth cap, as the drain last gave it (its share of the total).
        Map<String, Long> given = new HashMap<>();
        // A resumed drain first picks up the moves its predecessor had started.
        for (VmMove m : i.getMovesList()) {
            if (m.getState() == MoveState.MOVE_STATE_MIGRATING) {
                String id = childId(i, m.getVm());
                inFlight.put(m.getVm(), childOutcome(id));
                store.intent(id)
                        .ifPresent(c ->
                                given.put(m.getVm(), c.value().getMigration().getMaxBandwidthBytesPerSec()));
            }
        }
        while (true) {
            guard.checkOpen();
            Intent.Builder next = i.toBuilder();
            boolean changed = false;
            boolean activated = store.maintenance(host).isEmpty();
            // Moves that ended.
            for (int k = 0; k < next.getMovesCount(); k++) {
                VmMove m = next.getMoves(k);
                CompletableFuture<Intent> f = inFlight.get(m.getVm());
                if (m.getState() == MoveState.MOVE_STATE_MIGRATING && f != null && f.isDone()) {
                    inFlight.remove(m.getVm());
                    next.setMoves(k, settled(m, f));
                    changed = true;
                }
            }
            // Moves to start.
            for (int k = 0;
                    k < next.getMovesCount() && (activated || inFlight.size() < Math.max(1, i.getParallel()));
                    k++) {
                VmMove m = next.getMoves(k);
                if (m.getState() != MoveState.MOVE_STATE_PENDING) {
                    continue;
                }
                if (activated) {
                    next.setMoves(
                            k,
                            m.toBuilder()
                                    .setState(MoveState.MOVE_STATE_FAILED)
                                    .setReason(host + " was activated before this VM moved"));
                    changed = true;
                    continue;
                }
                next.setMoves(k, m.getCold() ? moveCold(i, m) : startLive(i, m, inFlight, openLive(next), given));
                changed = true;
            }
            if (changed) {
                resplit(i, next, inFlight, given);
            }
            if (changed) {
                Tx tx = writes.tx();
                Versioned<Intent> n = tx.setIntent(cur, next.build());
                tx.commit();
                cur = n;
                i = n.value();
                progress(run, i, start, null);
            }
            boolean open = i.getMovesList().stream()
                    .anyMatch(m -> m.getState() == MoveState.MOVE_STATE_PENDING
                            || m.getState() == MoveState.MOVE_STATE_MIGRATING);
            if (!open) {
                break;
            }
            if (!inFlight.isEmpty()) {
                try {
                    CompletableFuture.anyOf(inFlight.values().toArray(CompletableFuture[]::new))
                            .get(500, TimeUnit.MILLISECONDS);
                } catch (TimeoutException | java.util.concurrent.ExecutionException e) {
                    // look again
                }
            } else {
                guard.pause(Duration.ofMillis(100));
            }
        }
        List<String> failed = new ArrayList<>();
        int moved = 0;
        for (VmMove m : i.getMovesList()) {
            if (m.getState() == MoveState.MOVE_STATE_DONE) {
                moved++;
            } else {
                failed.add(m.getVm() + " (" + m.getReason() + ")");
            }
        }
        Intent end = failed.isEmpty()
                ? intents.finish(
                        writes.tx(),
                        cur,
                        IntentState.INTENT_STATE_DONE,
                        "moved " + moved + " VM(s) off " + host + "; it stays in maintenance until activated")
                : intents.finish(
                        writes.tx(),
                        cur,
                        IntentState.INTENT_STATE_FAILED,
                        failed.size() + " of " + i.getMovesCount() + " VM(s) could not move off " + host + ": "
                                + String.join("; ", failed));
        progress(run, end, start, end.getState() == IntentState.INTENT_STATE_DONE ? end.getResult() : end.getError());
        return end;
    }

    static String childId(Intent drain, String vm) {
        return drain.getId() + "." + vm;
    }

    private CompletableFuture<Intent> childOutcome(String id) throws Exception {
        Optional<Versioned<Intent>> child = store.intent(id);
        if (child.isEmpty()) {
            return CompletableFuture.completedFuture(Intent.newBuilder()
                    .setId(id)
                    .setState(IntentState.INTENT_STATE_FAILED)
                    .setError("its migration was never written")
                    .build());
        }
        if (!Intents.isOpen(child.get().value())) {
            return CompletableFuture.completedFuture(child.get().value());
        }
        return intents.resume(child.get()).outcome;
    }

    private VmMove settled(VmMove m, CompletableFuture<Intent> f) {
        Intent child;
        try {
            child = f.join();
        } catch (RuntimeException e) {
            throw new NotLeaderException("a move of the drain was interrupted: " + e.getMessage());
        }
        VmMove.Builder b = m.toBuilder();
        if (child.getState() == IntentState.INTENT_STATE_DONE) {
            b.setState(MoveState.MOVE_STATE_DONE)
                    .setReason("")
                    .setTotalMs(child.getSummary().getTotalMs())
                    .setDowntimeMs(child.getSummary().getDowntimeMs());
        } else {
            b.setState(MoveState.MOVE_STATE_FAILED).setReason(child.getError());
        }
        return b.build();
    }

    /** Live moves not ended yet (pending or migrating): what the drain's bandwidth is shared between. */
    private static int openLive(Intent.Builder drain) {
        int open = 0;
        for (VmMove m : drain.getMovesList()) {
            if (!m.getCold()
                    && (m.getState() == MoveState.MOVE_STATE_PENDING
                            || m.getState() == MoveState.MOVE_STATE_MIGRATING)) {
                open++;
            }
        }
        return open;
    }

    /**
     * Raises the running moves' caps to their share of the drain's total now that fewer moves are
     * left than may run at once (the drain's tail): without it the last move would crawl at the
     * share it got beside neighbours long gone. Each move's new cap reaches its sender as a limit
     * change (`ferry report` shows it); the sum over the running moves stays within the total
     * ({@link DrainBandwidth#share}). A move's cap set meanwhile with `ferry migrate set` is replaced
     * when the drain raises it. A source that cannot be told keeps the cap it has.
     */
    private void resplit(
            Intent drain,
            Intent.Builder now,
            Map<String, CompletableFuture<Intent>> inFlight,
            Map<String, Long> given) {
        long total = drain.getMigration().getMaxBandwidthBytesPerSec();
        given.keySet().retainAll(inFlight.keySet());
        if (total == 0 || inFlight.isEmpty()) {
            return;
        }
        long share = DrainBandwidth.share(total, Math.max(1, drain.getParallel()), Math.max(1, openLive(now)));
        HostRecord source = view.hostRecord(drain.getHost());
        if (source == null) {
            return;
        }
        for (Map.Entry<String, CompletableFuture<Intent>> move : inFlight.entrySet()) {
            String vm = move.getKey();
            long had = given.getOrDefault(vm, 0L);
            if (had == 0 || had >= share || move.getValue().isDone()) {
                continue;
            }
            try {
                orders.setMigrationLimits(
                        source,
                        dev.ferry.proto.agent.SetMigrationLimitsRequest.newBuilder()
                                .setVm(vm)
                                .setMaxBandwidthBytesPerSec(share)
                                .build());
                given.put(vm, share);
                log.info(
                        "draining {}: {}'s share of the drain's bandwidth raised to {} B/s",
                        drain.getHost(),
                        vm,
                        share);
            } catch (AgentCallException e) {
                // Ended meanwhile, or the source cannot be reached: the move keeps its cap.
                log.info("draining {}: cannot raise {}'s share: {}", drain.getHost(), vm, e.getMessage());
            }
        }
    }

    private VmMove startLive(
            Intent drain,
            VmMove m,
            Map<String, CompletableFuture<Intent>> inFlight,
            int openLive,
            Map<String, Long> given)
            throws Exception {
        Versioned<VmRecord> rec = freshVm(m.getVm());
        if (rec == null || !rec.value().getOwner().equals(drain.getHost())) {
            return m.toBuilder()
                    .setState(MoveState.MOVE_STATE_DONE)
                    .setReason(
                            rec == null
                                    ? "deleted meanwhile"
                                    : "already on " + rec.value().getOwner())
                    .build();
        }
        Placement.Decision d = capacity.placeAndReserve(rec.value().getSpec(), Set.of(drain.getHost()));
        if (d instanceof Placement.NoHost n) {
            return m.toBuilder()
                    .setState(MoveState.MOVE_STATE_FAILED)
                    .setReason(n.reason())
                    .build();
        }
        String target = ((Placement.Placed) d).host();
        // The drain's cap is its total (`host drain --max-bandwidth`): this move's share.
        long share = DrainBandwidth.share(
                drain.getMigration().getMaxBandwidthBytesPerSec(),
                Math.max(1, drain.getParallel()),
                Math.max(1, openLive));
        Intent child = Intents.intent(IntentKind.INTENT_KIND_MIGRATE, childId(drain, m.getVm()))
                .setVm(m.getVm())
                .setHost(target)
                .setMigration(drain.getMigration().toBuilder().setMaxBandwidthBytesPerSec(share))
                .build();
        IntentRun run;
        try {
            run = intents.submit(child);
        } finally {
            capacity.settle(m.getVm());
        }
        inFlight.put(m.getVm(), run.outcome);
        given.put(m.getVm(), share);
        return m.toBuilder()
                .setState(MoveState.MOVE_STATE_MIGRATING)
                .setTarget(target)
                .build();
    }

    /** A VM that does not run moves by ownership only: its record names another host (epoch + 1). */
    private VmMove moveCold(Intent drain, VmMove m) throws Exception {
        String name = m.getVm();
        if (!claims.claim(name, drain.getId())) {
            return m.toBuilder()
                    .setState(MoveState.MOVE_STATE_FAILED)
                    .setReason(claims.busy(name))
                    .build();
        }
        try {
            Versioned<VmRecord> rec = freshVm(name);
            if (rec == null || !rec.value().getOwner().equals(drain.getHost())) {
                return m.toBuilder()
                        .setState(MoveState.MOVE_STATE_DONE)
                        .setReason(
                                rec == null
                                        ? "deleted meanwhile"
                                        : "already on " + rec.value().getOwner())
                        .build();
            }
            VmRecord r = rec.value();
            Versioned<RunningRecord> lock = store.running(name).orElse(null);
            if (lock != null) {
                return m.toBuilder()
                        .setState(MoveState.MOVE_STATE_FAILED)
                        .setReason("it started on " + lock.value().getHostId() + " during the drain")
                        .build();
            }
            Placement.Decision d = capacity.placeAndReserve(r.getSpec(), Set.of(drain.getHost()));
            String target;
            if (d instanceof Placement.NoHost n) {
                if (r.getDesired() == DesiredState.DESIRED_STATE_RUNNING) {
                    return m.toBuilder()
                            .setState(MoveState.MOVE_STATE_FAILED)
                            .setReason(n.reason())
                            .build();
                }
                // A stopped VM needs no room now; any other live host will do.
                target = view.hosts().keySet().stream()
                        .filter(h -> !h.equals(drain.getHost()) && !view.inMaintenance(h))
                        .sorted()
                        .findFirst()
                        .orElse(null);
                if (target == null) {
                    return m.toBuilder()
                            .setState(MoveState.MOVE_STATE_FAILED)
                            .setReason(n.reason())
                            .build();
                }
            } else {
                target = ((Placement.Placed) d).host();
            }
            try {
                writes.tx()
                        .setVm(
                                rec,
                                r.toBuilder()
                                        .setOwner(target)
                                        .setEpoch(r.getEpoch() + 1)
                                        .build())
                        .commit();
            } finally {
                capacity.settle(name);
            }
            HostRecord old = view.hostRecord(drain.getHost());
            if (old != null) {
                try {
                    orders.deleteVm(
                            old,
                            VmRequest.newBuilder()
                                    .setName(name)
                                    .setRequestId(drain.getId() + "." + name)
                                    .build());
                } catch (AgentCallException e) {
                    // its definition there is stale anyway; the new owner defines it when it starts
                }
            }
            return m.toBuilder()
                    .setState(MoveState.MOVE_STATE_DONE)
                    .setTarget(target)
                    .setReason("")
                    .build();
        } finally {
            claims.unclaim(name, drain.getId());
        }
    }

    private Versioned<VmRecord> freshVm(String name) throws Exception {
        return store.vm(name).orElse(null);
    }

    private static void progress(IntentRun run, Intent i, long startNanos, String message) {
        DrainProgress.Builder p = DrainProgress.newBuilder()
                .setIntentId(i.getId())
                .setHost(i.getHost())
                .setState(i.getState())
                .addAllMoves(i.getMovesList())
                .setElapsedMs((System.nanoTime() - startNanos) / 1_000_000);
        if (message != null) {
            p.setMessage(message);
        }
        run.emit(p.build());
    }

    // ---- activate

    Intent activate(IntentRun run, Versioned<Intent> cur) throws Exception {
        Intent i = cur.value();
        String host = i.getHost();
        Optional<Versioned<Maintenance>> m = store.maintenance(host);
        if (m.isEmpty()) {
            if (!knownHost(host)) {
                return intents.fail(cur, CoordinatorException.noHost(host).getMessage());
            }
            return intents.finish(writes.tx(), cur, IntentState.INTENT_STATE_DONE, host + " was not in maintenance");
        }
        Tx tx = writes.tx().op(store.delete(m.get().path(), m.get().version()));
        return intents.finish(tx, cur, IntentState.INTENT_STATE_DONE, host + " is active: it takes VMs again");
    }
}
