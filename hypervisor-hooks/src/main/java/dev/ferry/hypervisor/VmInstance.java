package dev.ferry.hypervisor;

import dev.ferry.proto.vm.VmSpec;
import java.util.Optional;
import java.util.function.Consumer;

/**
 * One VM on this host, through the capabilities the migration engine needs: lifecycle,
 * pause/resume, guest memory, dirty log and device state.
 *
 * <p>{@link #close()} ends the VM whatever its state (kills the hypervisor process) and removes
 * its files; it is the one call every failure path may rely on.
 */
public interface VmInstance extends AutoCloseable {
    VmSpec spec();

    InstanceState state();

    /** Boots a VM created with {@link HypervisorDriver#create}. */
    void start() throws HypervisorException;

    /** Stops the vCPUs. When this returns, the guest no longer writes its memory. */
    void pause() throws HypervisorException;

    void resume() throws HypervisorException;

    /** Powers the VM off; its files stay until {@link #close()}. */
    void stop() throws HypervisorException;

    GuestMemory memory();

    /** The driver's dirty-page log, or empty when this host cannot track guest writes. */
    Optional<DirtyLog> dirtyLog();

    DeviceState deviceState();

    /**
     * What a switchover costs besides sending the last dirty pages (saving and loading device
     * state, pausing and resuming): the convergence policy adds it to the expected downtime.
     */
    default java.time.Duration switchoverCostEstimate() {
        return java.time.Duration.ofMillis(5);
    }

    /** The guest's own progress counter (the test guest's heartbeat), when the driver can read one. */
    default long heartbeat() {
        return -1;
    }

    /** Called once if the VM ends without being asked to (the hypervisor process died). */
    void onUnexpectedExit(Consumer<String> listener);

    @Override
    void close();
}
