package dev.ferry.migration.commit;

import java.time.Duration;
import java.util.Optional;

/**
 * The commit point of a live migration: the single step after which the destination, and only
 * the destination, may run the VM. Both the source and the destination consult it, so that
 * whatever fails around it, at most one copy of the VM ever resumes.
 */
public interface OwnershipCommit {
    enum Side {
        SOURCE,
        DESTINATION
    }

    /**
     * Source side, at the pause, beside the final pages: reads ahead what {@link #commit} will
     * check, so that the commit in the pause is one write. Must be safe however stale the reads
     * turn out (the commit's write checks what it read) and must not throw.
     */
    default void prepare(CommitRequest request) {}

    /** Source side, VM paused, destination ready: moves ownership to the target. */
    CommitOutcome commit(CommitRequest request) throws InterruptedException;

    /**
     * Why {@link #commit} last answered {@link CommitOutcome#REJECTED} for {@code request}'s
     * migration, for the migration's error (asked once, right after); empty when the commit has
     * nothing to add.
     */
    default Optional<String> whyRejected(CommitRequest request) {
        return Optional.empty();
    }

    /** Destination side, on receiving the source's Commit frame: may the destination resume? */
    CommitOutcome confirm(CommitRequest request) throws InterruptedException;

    /**
     * Either side, when the other went silent around the commit: what happened? Returns
     * {@link CommitOutcome#UNKNOWN} if it cannot be learned within {@code timeout}.
     */
    CommitOutcome resolve(CommitRequest request, Side side, Duration timeout) throws InterruptedException;

    /**
     * Source side, the migration failed with the VM paused here: may the source resume it?
     * {@code commitAttempted} says whether {@link #commit} was called (and the outcome then turned
     * out REJECTED). Without a cluster store the source resumes after a failure before the commit
     * and stays paused after a rejected one (its destination was the authority, and the operator
     * decides). The cluster store answers from the VM's record and run lock, waiting up to
     * {@code timeout} to learn them.
     */
    default boolean sourceMayResume(CommitRequest request, boolean commitAttempted, Duration timeout)
            throws InterruptedException {
        return !commitAttempted;
    }
}
