package dev.ferry.hypervisor;

import dev.ferry.proto.vm.VmSpec;
import java.io.Closeable;

/**
 * A hypervisor on this host. The migration engine and the agent see VMs only through this SPI,
 * so the QEMU driver and the sim test double are interchangeable under them.
 */
public interface HypervisorDriver extends Closeable {
    /** {@code "qemu"} or {@code "sim"}: recorded in VM status and logs. */
    String name();

    /** What this host can do: dirty tracking for agent pre-copy, hypervisor-native migration. */
    HostCapabilities capabilities();

    /**
     * What this host's hypervisor runs (version, machine types, accelerator, CPU models), probed
     * once and cached; the agent registers it. The default is the sim driver's, which runs any spec.
     */
    default HypervisorProfile profile() throws HypervisorException {
        return HypervisorProfile.sim();
    }

    /** Checks a spec before anything is created: unsupported features fail here, with the reason. */
    void validate(VmSpec spec) throws HypervisorException;

    /** Defines a VM that boots fresh on {@link VmInstance#start()}. Allocates its RAM file. */
    VmInstance create(VmSpec spec, VmPaths paths) throws HypervisorException;

    /**
     * Defines the destination of an incoming migration: RAM allocated (zero), not running, ready to
     * receive pages and device state. For QEMU the process is already started here, waiting for
     * its incoming state, so that its start-up is not downtime.
     */
    VmInstance prepareIncoming(VmSpec spec, VmPaths paths, IncomingKind kind) throws HypervisorException;

    /**
     * Takes over a VM that an earlier agent process on this host started and left running
     * ({@link VmInstance#survivesAgent()}), from its files in {@code paths}; empty when nothing of it
     * runs any more (then nothing was changed). The adopted guest may be frozen by its lapsed
     * lease; it stays frozen until the caller thaws it.
     */
    default java.util.Optional<VmInstance> adopt(VmSpec spec, VmPaths paths) throws HypervisorException {
        return java.util.Optional.empty();
    }

    /**
     * Ends whatever an earlier agent process left of a VM it could not adopt (a migration's
     * destination that never committed, a guest without a record): its hypervisor process, if one
     * still runs. The caller removes the files.
     */
    default void discardLeftover(VmPaths paths) {}

    /** How an incoming VM will receive its state. */
    enum IncomingKind {
        /** Ferry writes RAM pages; the hypervisor loads only device state. */
        PRECOPY,
        /** The hypervisor's own migration stream carries everything. */
        HYPERVISOR_NATIVE
    }

    @Override
    void close();
}
