package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.cluster.LeaderTerm;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;

/**
 * A leader's term and the guard on everything it writes. Taking office allocates the term: one
 * transaction checks the replica's latch node and sets {@code /term} to term + 1 at the version it
 * was read at. Every later write of the term is one transaction that checks the latch node still
 * exists and {@code /term} is still at the version this term wrote, then does its own operations.
 *
 * <p>Why terms only grow and are never shared: {@code /term} is only ever changed by that
 * version-checked set (created once, never deleted by Ferry). ZooKeeper applies writes in one
 * order and a set at version v succeeds only if no write came between the read and it, so the
 * successful allocations form a chain n, n + 1, n + 2, ... in that order: each term is allocated
 * once, and a later leader's term is greater. And because the allocation checks the latch node in
 * the same transaction, a replica whose session ended (its ephemeral latch node gone) cannot take
 * one. A deposed leader that wakes (a long GC, SIGSTOP) cannot write either: its latch node went
 * with its session, and its successor moved {@code /term} past its version; even a client that
 * silently reconnected under a new session (Curator retries a write after an expiry) meets those
 * checks.
 */
final class WriteGuard {
    private static final int ALLOCATION_ATTEMPTS = 10;

    private final ClusterStore store;
    private final String leaderId;
    private final String latchPath;
    private final long term;
    private final int termVersion;
    private volatile boolean closed;

    private WriteGuard(ClusterStore store, String leaderId, String latchPath, long term, int termVersion) {
        this.store = store;
        this.leaderId = leaderId;
        this.latchPath = latchPath;
        this.term = term;
        this.termVersion = termVersion;
    }

    /** Allocates the next leader term for the replica whose latch node is {@code latchPath}. */
    static WriteGuard takeOffice(ClusterStore store, String leaderId, String latchPath, long wallMillis)
            throws Exception {
        for (int attempt = 0; attempt < ALLOCATION_ATTEMPTS; attempt++) {
            Optional<Versioned<LeaderTerm>> current = store.leaderTerm();
            long next = current.map(v -> v.value().getTerm()).orElse(0L) + 1;
            LeaderTerm record = LeaderTerm.newBuilder()
                    .setSchemaVersion(Records.SCHEMA_VERSION)
                    .setTerm(next)
                    .setLeader(leaderId)
                    .setSinceMs(wallMillis)
                    .build();
            CuratorOp take = current.isPresent()
                    ? store.set(ClusterPaths.TERM, record, current.get().version())
                    : store.create(ClusterPaths.TERM, record, CreateMode.PERSISTENT);
            try {
                store.commit(List.of(store.check(latchPath, -1), take));
                return new WriteGuard(
                        store,
                        leaderId,
                        latchPath,
                        next,
                        current.map(v -> v.version() + 1).orElse(0));
            } catch (KeeperException e) {
                int failed = ClusterStore.failedOp(e);
                if (failed == 0) {
                    throw new NotLeaderException(leaderId + " lost its latch node before it could take a term");
                }
                if (failed != 1) {
                    throw e;
                }
                // Another replica took a term between our read and our write: read again.
            }
        }
        throw new IllegalStateException(
                "could not take a leader term: " + ClusterPaths.TERM + " kept changing under " + leaderId);
    }

    long term() {
        return term;
    }

    String leaderId() {
        return leaderId;
    }

    ClusterStore store() {
        return store;
    }

    boolean closed() {
        return closed;
    }

    void close() {
        closed = true;
    }

    void checkOpen() {
        if (closed) {
            throw new NotLeaderException(leaderId + " no longer leads (term " + term + ")");
        }
    }

    /**
     * One transaction: this replica's latch node must exist and {@code /term} must still be this
     * term's (else {@link NotLeaderException}), then {@code ops}, all or nothing.
     */
    void write(List<CuratorOp> ops) throws Exception {
        checkOpen();
        try {
            store.commit(guarded(ops));
        } catch (KeeperException e) {
            int failed = ClusterStore.failedOp(e);
            if (failed == 0) {
                closed = true;
                throw new NotLeaderException(leaderId + " lost its leadership (its latch node is gone)");
            }
            if (failed == 1) {
                closed = true;
                throw new NotLeaderException(
                        leaderId + " lost its leadership: term " + term + " was superseded by a newer leader's");
            }
            throw e;
        }
    }

    /** {@code ops} behind this term's checks, as {@link #write} commits them. */
    List<CuratorOp> guarded(List<CuratorOp> ops) throws Exception {
        List<CuratorOp> all = new ArrayList<>(ops.size() + 2);
        all.add(store.check(latchPath, -1));
        all.add(store.check(ClusterPaths.TERM, termVersion));
        all.addAll(ops);
        return all;
    }

    /** Sleeps, unless the term ends meanwhile. */
    void pause(Duration d) throws InterruptedException {
        checkOpen();
        Thread.sleep(d.toMillis());
        checkOpen();
    }
}
