package dev.ferry.migration.commit;

import java.time.Duration;
import java.util.Objects;

/**
 * Ownership without a cluster store: the destination agent is the authority, and the commit
 * point is the destination receiving the source's Commit frame. When the source hears nothing
 * back it asks the destination agent which way it went (the {@code destinationProbe}); while the
 * destination cannot be reached the outcome stays unknown and the source stays paused.
 *
 * <p>The ZooKeeper-backed commit of the cluster coordinator replaces this with one
 * version-checked write that both sides can read.
 */
public final class LocalOwnershipCommit implements OwnershipCommit {
    /** Asks the destination agent whether it holds the VM at the new epoch. */
    @FunctionalInterface
    public interface DestinationProbe {
        CommitOutcome probe(CommitRequest request, Duration timeout) throws InterruptedException;
    }

    private final DestinationProbe probe;

    public LocalOwnershipCommit(DestinationProbe probe) {
        this.probe = Objects.requireNonNull(probe);
    }

    @Override
    public CommitOutcome commit(CommitRequest request) {
        return CommitOutcome.COMMITTED;
    }

    @Override
    public CommitOutcome confirm(CommitRequest request) {
        return CommitOutcome.COMMITTED;
    }

    @Override
    public CommitOutcome resolve(CommitRequest request, Side side, Duration timeout) throws InterruptedException {
        if (side == Side.DESTINATION) {
            // No Commit frame reached the destination, so by this implementation's rule it never happened.
            return CommitOutcome.REJECTED;
        }
        return probe.probe(request, timeout);
    }
}
