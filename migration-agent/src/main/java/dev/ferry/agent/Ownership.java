package dev.ferry.agent;

/**
 * Whether this host may run a VM. Standalone, a host runs whatever it holds. In a cluster the
 * cluster store decides (the cluster coordinator module supplies that implementation): a host
 * runs a VM only while the VM's record names it at the epoch it runs at and it holds the VM's run
 * lock, so that a host cut off from the cluster can never start or resume a VM another host may
 * already run.
 *
 * <p>The registry calls {@link #acquire} before it starts a VM and {@link #release} once the VM no
 * longer runs here. Live migrations take and hand over ownership through the
 * {@link dev.ferry.migration.commit.OwnershipCommit} instead.
 */
public interface Ownership {
    /**
     * Called just before this host starts {@code vm} at {@code epoch}. Returns when it may; throws
     * (FAILED_PRECONDITION, UNAVAILABLE) with the reason when it may not.
     */
    void acquire(String vm, long epoch) throws AgentException;

    /**
     * Called at the last moment before the guest of {@code vm} executes here (start, or resume on
     * arrival by migration), after {@link #acquire} or the migration commit took its run lock:
     * throws if this host no longer holds that lock in good standing (it lost contact with the
     * cluster, or fenced, meanwhile). A local check, no I/O.
     */
    default void confirm(String vm, long epoch) throws AgentException {}

    /**
     * True when guests here run under leases ({@link dev.ferry.hypervisor.lease.LeaseFile}): they
     * stop by themselves when the agent stops renewing, so that a frozen or dead agent cannot
     * leave a guest running past the moment the cluster may restart it elsewhere.
     */
    default boolean leases() {
        return false;
    }

    /**
     * Until when ({@link System#nanoTime()}) the guest of {@code vm} at {@code epoch} may execute
     * here, from this host's current evidence that it holds the VM's run lock; 0 when it has none.
     * Never later than the earliest moment the cluster could restart the VM elsewhere.
     */
    default long leaseDeadline(String vm, long epoch) {
        return Long.MAX_VALUE;
    }

    /**
     * The same for a VM arriving by migration (it cannot execute before its commit, but its
     * hypervisor process must not be stopped while the migration runs): this host's standing.
     */
    default long arrivalLeaseDeadline() {
        return Long.MAX_VALUE;
    }

    /**
     * Takes the run lock of {@code vm} at {@code epoch} back for a guest that already exists here
     * (frozen by a fence, or found running by a restarted agent). Returns when this host owns it
     * again; throws FAILED_PRECONDITION when the cluster says another host does (the caller kills
     * its copy), UNAVAILABLE when it cannot tell now (the caller keeps it frozen and asks again).
     */
    default void reclaim(String vm, long epoch) throws AgentException {
        acquire(vm, epoch);
    }

    /** {@code vm} stopped running here (stopped, deleted, failed, fenced). Best effort, never throws. */
    void release(String vm, long epoch);

    /**
     * True when a cluster store, not this host's registry, says what the host owns: then an entry
     * left over from an older ownership (stopped or failed at a lower epoch) gives way to a newer
     * one. Standalone, a name clash is an error.
     */
    default boolean clustered() {
        return true;
    }

    /** No cluster: this host runs what it holds. */
    static Ownership standalone() {
        return new Ownership() {
            @Override
            public void acquire(String vm, long epoch) {}

            @Override
            public void release(String vm, long epoch) {}

            @Override
            public boolean clustered() {
                return false;
            }
        };
    }
}
