package dev.ferry.agent;

import dev.ferry.hypervisor.InstanceState;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;

/**
 * A VM this host owns. Its state changes only under its own monitor; a running migration holds
 * the VM (state MIGRATING_OUT) so that no other operation interleaves with it.
 */
final class ManagedVm {
    final String name;
    final VmSpec spec;
    // Volatile so that fencing can kill the VM without waiting for its monitor (a start may hold it
    // for seconds while the hypervisor allocates RAM).
    private volatile VmInstance instance;
    // Volatile so that a metrics scrape can read it without waiting for the monitor (see stateUnlocked).
    private volatile VmState state;
    private long epoch;
    private String reason = "";
    private PreCopySender migration;
    // A start in progress (its run lock is taken, its RAM being allocated): the lock must stay.
    private volatile boolean starting;
    // The guest's lease (null outside a cluster); renewed by the registry while this host owns it.
    private volatile dev.ferry.hypervisor.lease.LeaseFile lease;

    ManagedVm(VmSpec spec, VmInstance instance, long epoch) {
        this.name = spec.getName();
        this.spec = spec;
        this.instance = instance;
        this.epoch = epoch;
        this.state = VmState.VM_STATE_STOPPED;
    }

    synchronized VmInstance instance() {
        return instance;
    }

    synchronized void instance(VmInstance i) {
        this.instance = i;
    }

    dev.ferry.hypervisor.lease.LeaseFile lease() {
        return lease;
    }

    void lease(dev.ferry.hypervisor.lease.LeaseFile l) {
        lease = l;
    }

    boolean starting() {
        return starting;
    }

    void starting(boolean s) {
        this.starting = s;
    }

    /** The instance, read without the monitor: for fencing only. */
    VmInstance instanceUnlocked() {
        return instance;
    }

    synchronized VmState state() {
        return state;
    }

    /** The state, read without the monitor: for metrics only, which must not wait behind a start. */
    VmState stateUnlocked() {
        return state;
    }

    synchronized void state(VmState s, String why) {
        this.state = s;
        this.reason = why == null ? "" : why;
    }

    synchronized long epoch() {
        return epoch;
    }

    synchronized void epoch(long e) {
        this.epoch = e;
    }

    synchronized PreCopySender migration() {
        return migration;
    }

    synchronized void migration(PreCopySender m) {
        this.migration = m;
    }

    synchronized VmStatus status(String host, String driver) {
        VmState s = state;
        if (instance != null && instance.state() == InstanceState.FAILED && s != VmState.VM_STATE_FAILED) {
            s = VmState.VM_STATE_FAILED;
        }
        VmStatus.Builder b = VmStatus.newBuilder()
                .setSpec(spec)
                .setState(s)
                .setHost(host)
                .setEpoch(epoch)
                .setDriver(driver)
                .setReason(reason);
        if (instance != null
                && (s == VmState.VM_STATE_RUNNING
                        || s == VmState.VM_STATE_PAUSED
                        || s == VmState.VM_STATE_MIGRATING_OUT
                        || s == VmState.VM_STATE_FENCED)) {
            b.setHeartbeat(Math.max(0, instance.heartbeat()));
        }
        return b.build();
    }
}
