package dev.ferry.agent.cluster;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.migration.commit.CommitOutcome;
import dev.ferry.migration.commit.CommitRequest;
import dev.ferry.migration.commit.OwnershipCommit;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmRecord;
import java.time.Duration;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The commit point of a live migration in a cluster: one ZooKeeper transaction.
 *
 * <p>Source S, destination T, VM v at epoch e. S, paused, commits with one multi-op: set
 * {@code /vms/v} at the version it read (owner S to T, epoch e to e+1) and delete its own run
 * lock {@code /running/v}, with a version check of the coordinator's intent {@code /intents/<id>}
 * (the migration id is the intent's id). It commits only while the record names S at e, nobody
 * vetoed this migration, S holds the lock, and the intent is a migrate intent of v from S at e to
 * T that is still RUNNING, and while T is registered (its ephemeral {@code /hosts/T} exists, so
 * its session lives): a source cannot move a VM to a host the coordinator did not choose, nor
 * complete a migration whose intent ended (failed, or was finished by a new leader) meanwhile,
 * nor hand the VM to a target that died after it said ready.
 * Success: COMMITTED. The record changed: read it again and
 * decide (T at e+1 is COMMITTED; S at e, not vetoed, is tried again; anything else REJECTED). The
 * connection went: UNKNOWN, and both sides stay paused until {@link #resolve} learns the outcome
 * with a sync and a read.
 *
 * <p>T resumes only after it has read T at e+1 (after a sync) and taken its own run lock in the
 * same transaction as a check of that record. A destination that lost its stream before it saw
 * the commit first vetoes the migration in the record (a version-checked write), so that S can no
 * longer commit it, and only then discards its copy. S resumes after a failure only while the
 * record still names S at e and S still holds its lock.
 *
 * <p>Every step is one attempt on a client without retries: a lost connection is reported as
 * such, never retried blindly.
 */
final class ZkOwnershipCommit implements OwnershipCommit {
    private static final Logger log = LoggerFactory.getLogger(ZkOwnershipCommit.class);
    private static final Duration SYNC_TIMEOUT = Duration.ofSeconds(5);
    private static final long RETRY_PAUSE_MS = 200;

    private final ClusterMember member;
    /** Why a commit was refused, by migration id, until the sender asks ({@link #whyRejected}). */
    private final Map<String, String> refusals = new ConcurrentHashMap<>();

    ZkOwnershipCommit(ClusterMember member) {
        this.member = member;
    }

    private CommitOutcome refuse(CommitRequest r, String why) {
        log.warn("migration {}: not committing: {}", r.migrationId(), why);
        refusals.put(r.migrationId(), why);
        return CommitOutcome.REJECTED;
    }

    @Override
    public Optional<String> whyRejected(CommitRequest r) {
        return Optional.ofNullable(refusals.remove(r.migrationId()));
    }

    // ---- source

    /**
     * What the commit checks, as read under one session: the record, the source's run lock, the
     * coordinator's intent and the target's registration.
     */
    private record Reads(
            long session,
            Optional<Versioned<VmRecord>> vm,
            Optional<Versioned<RunningRecord>> lock,
            Optional<Versioned<Intent>> intent,
            Optional<Versioned<dev.ferry.proto.cluster.HostRecord>> target) {

        /** Whether these reads lead straight to the commit's write (no refusal, not yet committed). */
        boolean allowWrite(CommitRequest r) {
            return vm.isPresent()
                    && namesSource(vm.get().value(), r)
                    && !r.migrationId().equals(vm.get().value().getVetoedMigration())
                    && lock.isPresent()
                    && lock.get().ephemeralOwner() == session
                    && intentRefusal(intent, r) == null
                    && target.isPresent();
        }
    }

    private static Reads read(ClusterMember.Session s, CommitRequest r) throws Exception {
        long session = s.id;
        return new Reads(
                session,
                s.store.vm(r.vm()),
                s.store.running(r.vm()),
                intent(s.store, r.migrationId()),
                s.store.host(r.target()));
    }

    /** Reads taken by {@link #prepare}, by migration id; the commit's first attempt takes them. */
    private final Map<String, Reads> readAhead = new ConcurrentHashMap<>();

    /**
     * Reads what the commit checks, beside the pause's final pages and device state, so that the
     * commit itself is one write: four reads in a row took most of the commit's 74 ms in the demo
     * on these machines. Safe however stale they get: the commit writes with a version check of
     * each (record and lock at the versions read, the intent at its version, the target's
     * registration present), so a change since fails the write and the commit reads again.
     * Reads that would refuse are not used: the commit reads afresh before it refuses.
     */
    @Override
    public void prepare(CommitRequest r) {
        try {
            ClusterMember.Session s = member.memberSession("read ahead for the commit of " + r.vm());
            readAhead.put(r.migrationId(), read(s, r));
        } catch (Exception e) {
            log.debug("migration {}: no read ahead of the commit: {}", r.migrationId(), e.toString());
        }
    }

    @Override
    public CommitOutcome commit(CommitRequest r) {
        Reads ahead = readAhead.remove(r.migrationId());
        ClusterMember.Session s;
        try {
            s = member.memberSession("commit the migration of " + r.vm());
        } catch (dev.ferry.agent.AgentException e) {
            // Nothing was written: the commit did not happen.
            return refuse(r, e.getMessage());
        }
        for (int attempt = 0; attempt < 5; attempt++) {
            try {
                Reads got = attempt == 0 && ahead != null && ahead.session() == s.id && ahead.allowWrite(r)
                        ? ahead
                        : read(s, r);
                Optional<Versioned<VmRecord>> read = got.vm();
                if (read.isEmpty()) {
                    return refuse(r, "VM " + r.vm() + " has no record");
                }
                VmRecord v = read.get().value();
                if (namesTarget(v, r)) {
                    return CommitOutcome.COMMITTED;
                }
                if (!namesSource(v, r) || r.migrationId().equals(v.getVetoedMigration())) {
                    return refuse(
                            r,
                            "the record of " + r.vm() + " names " + v.getOwner() + " at epoch " + v.getEpoch()
                                    + (r.migrationId().equals(v.getVetoedMigration())
                                            ? " and the destination vetoed this migration"
                                            : ", not " + r.source() + " at epoch " + r.epoch()));
                }
                Optional<Versioned<RunningRecord>> lock = got.lock();
                if (lock.isEmpty() || lock.get().ephemeralOwner() != got.session()) {
                    return refuse(r, r.source() + " no longer holds the run lock of " + r.vm());
                }
                Optional<Versioned<Intent>> intent = got.intent();
                String against = intentRefusal(intent, r);
                if (against != null) {
                    return refuse(r, against);
                }
                // The target's registration is ephemeral: it exists while the target's session
                // lives. Committing to a target that died after it said ready would hand the VM
                // to a dead host, to be restarted cold elsewhere; refusing keeps it running here.
                Optional<Versioned<dev.ferry.proto.cluster.HostRecord>> target = got.target();
                if (target.isEmpty()) {
                    return refuse(
                            r,
                            "the target " + r.target() + " is no longer a live member of the cluster (its registration "
                                    + "is gone: it died or lost its ZooKeeper session); " + r.vm() + " stays on "
                                    + r.source());
                }
                VmRecord moved = v.toBuilder()
                        .setOwner(r.target())
                        .setEpoch(r.newEpoch())
                        .setRestartAttempts(0)
                        .setFailureReason("")
                        .setVetoedMigration("")
                        .setUpdatedAtMs(System.currentTimeMillis())
                        .build();
                member.beforeCommitWriteHook().accept(r);
                // The intent's version check makes its reading above part of the commit: if the
                // coordinator ended or rewrote the intent since, the transaction fails and we read again.
                s.store.commit(
                        s.store.check(intent.get().path(), intent.get().version()),
                        // Any version: the target may rewrite its registration; it must exist.
                        s.store.check(target.get().path(), -1),
                        s.store.set(read.get().path(), moved, read.get().version()),
                        s.store.delete(lock.get().path(), lock.get().version()));
                return CommitOutcome.COMMITTED;
            } catch (KeeperException e) {
                if (ClusterStore.outcomeUnknown(e)) {
                    log.warn(
                            "migration {}: the commit write's outcome is unknown: {}", r.migrationId(), e.getMessage());
                    return CommitOutcome.UNKNOWN;
                }
                // A conflict: the record, the lock or the intent changed since we read them. Read again and decide.
            } catch (Exception e) {
                log.warn("migration {}: the commit write's outcome is unknown: {}", r.migrationId(), e.toString());
                return CommitOutcome.UNKNOWN;
            }
        }
        return refuse(r, "the record, run lock or intent of " + r.vm() + " kept changing under the commit");
    }

    /** The coordinator's intent named by {@code migrationId}, if there is one. */
    private static Optional<Versioned<Intent>> intent(ClusterStore store, String migrationId) throws Exception {
        try {
            return store.intent(migrationId);
        } catch (IllegalArgumentException e) {
            return Optional.empty(); // not even a valid intent id: no intent can name it
        }
    }

    /**
     * Why {@code read} does not allow this commit, or null when it does. The coordinator writes a
     * migrate intent RUNNING with the source, its epoch and the target before it orders the source,
     * and ends it (DONE or FAILED) only after the migration ended; so an intent that is missing,
     * names other parties, or has ended means the cluster did not decide this commit.
     */
    static String intentRefusal(Optional<Versioned<Intent>> read, CommitRequest r) {
        String id = r.migrationId();
        if (read.isEmpty()) {
            return "the coordinator has no intent " + id + ": the cluster did not decide this migration";
        }
        Intent i = read.get().value();
        if (i.getKind() != IntentKind.INTENT_KIND_MIGRATE) {
            return "intent " + id + " is not a migration but a " + i.getKind();
        }
        if (!i.getVm().equals(r.vm())) {
            return "intent " + id + " migrates VM " + i.getVm() + ", not " + r.vm();
        }
        if (!i.getHost().equals(r.target())) {
            return "intent " + id + " moves " + r.vm() + " to " + i.getHost() + ", not to " + r.target()
                    + ": the coordinator did not choose " + r.target();
        }
        if (!i.getSource().equals(r.source()) || i.getFromEpoch() != r.epoch()) {
            return "intent " + id + " moves " + r.vm() + " from " + i.getSource() + " at epoch " + i.getFromEpoch()
                    + ", not from " + r.source() + " at epoch " + r.epoch();
        }
        if (i.getState() != IntentState.INTENT_STATE_RUNNING) {
            return "intent " + id + " is " + i.getState() + (i.getError().isEmpty() ? "" : " (" + i.getError() + ")")
                    + ": the coordinator no longer carries out this migration";
        }
        return null;
    }

    @Override
    public boolean sourceMayResume(CommitRequest r, boolean commitAttempted, Duration timeout)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            ClusterMember.Session s = member.anySession();
            ClusterMember.State st = member.state();
            if (st == ClusterMember.State.FENCED || st == ClusterMember.State.CLOSED) {
                return false;
            }
            if (s != null && st == ClusterMember.State.MEMBER) {
                try {
                    s.store.sync(ClusterPaths.vm(r.vm()), SYNC_TIMEOUT);
                    Optional<Versioned<VmRecord>> read = s.store.vm(r.vm());
                    Optional<Versioned<RunningRecord>> lock = s.store.running(r.vm());
                    boolean ours = read.isPresent()
                            && namesSource(read.get().value(), r)
                            && lock.isPresent()
                            && lock.get().ephemeralOwner() == s.id;
                    if (!ours) {
                        log.warn(
                                "migration {}: {} may not resume {}: {}",
                                r.migrationId(),
                                r.source(),
                                r.vm(),
                                read.map(v -> "the record names " + v.value().getOwner() + " at epoch "
                                                        + v.value().getEpoch())
                                                .orElse("it has no record")
                                        + (lock.isPresent() && lock.get().ephemeralOwner() == s.id
                                                ? ""
                                                : "; this host does not hold its run lock"));
                    }
                    return ours;
                } catch (Exception e) {
                    log.debug(
                            "migration {}: cannot read the record of {} yet: {}",
                            r.migrationId(),
                            r.vm(),
                            e.toString());
                }
            }
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.sleep(RETRY_PAUSE_MS);
        }
    }

    // ---- destination

    @Override
    public CommitOutcome confirm(CommitRequest r) {
        return destinationStep(r, false);
    }

    @Override
    public CommitOutcome resolve(CommitRequest r, Side side, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            CommitOutcome o = side == Side.SOURCE ? sourceStep(r) : destinationStep(r, true);
            if (o != CommitOutcome.UNKNOWN || System.nanoTime() > deadline) {
                return o;
            }
            Thread.sleep(RETRY_PAUSE_MS);
        }
    }

    /** The source learns what its commit did: after a sync, the record says it. */
    private CommitOutcome sourceStep(CommitRequest r) {
        ClusterMember.Session s = member.anySession();
        if (s == null) {
            return CommitOutcome.UNKNOWN;
        }
        try {
            s.store.sync(ClusterPaths.vm(r.vm()), SYNC_TIMEOUT);
            Optional<Versioned<VmRecord>> read = s.store.vm(r.vm());
            if (read.isPresent() && namesTarget(read.get().value(), r)) {
                return CommitOutcome.COMMITTED;
            }
            // ZooKeeper applies a session's requests in order and refuses a stale one from a connection
            // the session has left (SESSIONMOVED), so after the sync our lost write either shows or
            // never happens.
            return CommitOutcome.REJECTED;
        } catch (Exception e) {
            return CommitOutcome.UNKNOWN;
        }
    }

    /**
     * The destination, READY: learns the outcome, and on COMMITTED takes the run lock before it
     * says so. With {@code mayVeto}, a record still naming the source makes the destination veto
     * the migration (so that the source can no longer commit it) and report REJECTED.
     */
    private CommitOutcome destinationStep(CommitRequest r, boolean mayVeto) {
        ClusterMember.Session s;
        try {
            s = member.memberSession("take over VM '" + r.vm() + "'");
        } catch (dev.ferry.agent.AgentException e) {
            return CommitOutcome.UNKNOWN;
        }
        for (int attempt = 0; attempt < 5; attempt++) {
            try {
                Optional<Versioned<VmRecord>> read = s.store.vmSynced(r.vm(), SYNC_TIMEOUT);
                if (read.isEmpty()) {
                    return CommitOutcome.REJECTED;
                }
                VmRecord v = read.get().value();
                if (namesTarget(v, r)) {
                    RunningRecord running = RunningRecord.newBuilder()
                            .setSchemaVersion(Records.SCHEMA_VERSION)
                            .setHostId(r.target())
                            .setEpoch(r.newEpoch())
                            .setSinceMs(System.currentTimeMillis())
                            .build();
                    try {
                        s.store.commit(
                                s.store.check(read.get().path(), read.get().version()),
                                s.store.create(ClusterPaths.running(r.vm()), running, CreateMode.EPHEMERAL));
                    } catch (KeeperException e) {
                        if (ClusterStore.failedOp(e) == 1 && e.code() == KeeperException.Code.NODEEXISTS) {
                            Optional<Versioned<RunningRecord>> held = s.store.running(r.vm());
                            if (held.isPresent() && held.get().ephemeralOwner() == s.id) {
                                member.ownershipTrack(r.vm(), r.newEpoch(), s.id);
                                return CommitOutcome.COMMITTED;
                            }
                            log.warn(
                                    "migration {}: {} is committed to {} but its run lock is still held ({}); waiting",
                                    r.migrationId(),
                                    r.vm(),
                                    r.target(),
                                    held.map(h -> h.value().getHostId()).orElse("?"));
                            return CommitOutcome.UNKNOWN;
                        }
                        throw e;
                    }
                    member.ownershipTrack(r.vm(), r.newEpoch(), s.id);
                    return CommitOutcome.COMMITTED;
                }
                if (namesSource(v, r) && !r.migrationId().equals(v.getVetoedMigration())) {
                    if (!mayVeto) {
                        // The source says it committed, yet the record does not show it: wait for the truth.
                        return CommitOutcome.UNKNOWN;
                    }
                    VmRecord vetoed = v.toBuilder()
                            .setVetoedMigration(r.migrationId())
                            .setUpdatedAtMs(System.currentTimeMillis())
                            .build();
                    s.store.commit(
                            s.store.set(read.get().path(), vetoed, read.get().version()));
                    log.info(
                            "migration {}: {} vetoed the commit it never saw; the source keeps {}",
                            r.migrationId(),
                            r.target(),
                            r.vm());
                    return CommitOutcome.REJECTED;
                }
                return CommitOutcome.REJECTED;
            } catch (KeeperException e) {
                if (ClusterStore.outcomeUnknown(e)) {
                    return CommitOutcome.UNKNOWN;
                }
                // a conflict: read again
            } catch (Exception e) {
                return CommitOutcome.UNKNOWN;
            }
        }
        return CommitOutcome.UNKNOWN;
    }

    private static boolean namesSource(VmRecord v, CommitRequest r) {
        return v.getOwner().equals(r.source()) && v.getEpoch() == r.epoch();
    }

    private static boolean namesTarget(VmRecord v, CommitRequest r) {
        return v.getOwner().equals(r.target()) && v.getEpoch() == r.newEpoch();
    }
}
