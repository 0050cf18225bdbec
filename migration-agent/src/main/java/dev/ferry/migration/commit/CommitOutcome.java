package dev.ferry.migration.commit;

/** What is known about a commit. */
public enum CommitOutcome {
    /** The target owns the VM at the new epoch: only the target may run it. */
    COMMITTED,
    /** The commit did not happen: the source still owns the VM at the old epoch. */
    REJECTED,
    /** Not known yet (the write's connection was lost): neither side may run the VM. */
    UNKNOWN
}
