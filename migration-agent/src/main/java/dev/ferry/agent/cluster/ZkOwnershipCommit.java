package dev.ferry.agent.cluster;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.migration.commit.CommitOutcome;
import dev.ferry.migration.commit.CommitRequest;
import dev.ferry.migration.commit.OwnershipCommit;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmRecord;
import java.time.Duration;
import java.util.Optional;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The commit point of a live migration in a cluster: one ZooKeeper transaction.
 *
 * <p>Source S, destination T, VM v at epoch e. S, paused, commits with one multi-op: set
 * {@code /vms/v} at the version it read (owner S to T, epoch e to e+1) and delete its own run
 * lock {@code /running/v}. It commits only while the record names S at e, nobody vetoed this
 * migration, and S holds the lock. Success: COMMITTED. The record changed: read it again and
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

    ZkOwnershipCommit(ClusterMember member) {
        this.member = member;
    }

    // ---- source

    @Override
    public CommitOutcome commit(CommitRequest r) {
        ClusterMember.Session s;
        try {
            s = member.memberSession("commit the migration of " + r.vm());
        } catch (dev.ferry.agent.AgentException e) {
            // Nothing was written: the commit did not happen.
            log.warn("migration {}: not committing: {}", r.migrationId(), e.getMessage());
            return CommitOutcome.REJECTED;
        }
        for (int attempt = 0; attempt < 5; attempt++) {
            try {
                Optional<Versioned<VmRecord>> read = s.store.vm(r.vm());
                if (read.isEmpty()) {
                    log.warn("migration {}: VM {} has no record: not committing", r.migrationId(), r.vm());
                    return CommitOutcome.REJECTED;
                }
                VmRecord v = read.get().value();
                if (namesTarget(v, r)) {
                    return CommitOutcome.COMMITTED;
                }
                if (!namesSource(v, r) || r.migrationId().equals(v.getVetoedMigration())) {
                    log.warn(
                            "migration {}: record of {} names {} at epoch {}{}: not committing",
                            r.migrationId(),
                            r.vm(),
                            v.getOwner(),
                            v.getEpoch(),
                            r.migrationId().equals(v.getVetoedMigration()) ? " and vetoes it" : "");
                    return CommitOutcome.REJECTED;
                }
                Optional<Versioned<RunningRecord>> lock = s.store.running(r.vm());
                if (lock.isEmpty() || lock.get().ephemeralOwner() != s.id) {
                    log.warn(
                            "migration {}: {} no longer holds the run lock of {}: not committing",
                            r.migrationId(),
                            r.source(),
                            r.vm());
                    return CommitOutcome.REJECTED;
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
                s.store.commit(
                        s.store.set(read.get().path(), moved, read.get().version()),
                        s.store.delete(lock.get().path(), lock.get().version()));
                return CommitOutcome.COMMITTED;
            } catch (KeeperException e) {
                if (ClusterStore.outcomeUnknown(e)) {
                    log.warn(
                            "migration {}: the commit write's outcome is unknown: {}", r.migrationId(), e.getMessage());
                    return CommitOutcome.UNKNOWN;
                }
                // A conflict: the record or the lock changed since we read them. Read again and decide.
            } catch (Exception e) {
                log.warn("migration {}: the commit write's outcome is unknown: {}", r.migrationId(), e.toString());
                return CommitOutcome.UNKNOWN;
            }
        }
        return CommitOutcome.REJECTED;
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
