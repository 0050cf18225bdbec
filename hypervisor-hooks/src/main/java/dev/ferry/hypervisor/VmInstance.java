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
     * Why the hypervisor's own migration of this VM (everything through its stream, Ferry's
     * qemu-native mode) would lose guest writes, or empty when it is not known to; the agent
     * refuses that mode with this reason.
     */
    default Optional<String> hypervisorNativeMigrationHazard() {
        return Optional.empty();
    }

    /**
     * What a switchover costs besides sending the last dirty pages (saving and loading device
     * state, pausing and resuming): the convergence policy adds it to the expected downtime.
     */
    default java.time.Duration switchoverCostEstimate() {
        return java.time.Duration.ofMillis(5);
    }

    /**
     * The guest's serial console history on this host, when the driver records one. It follows the
     * VM: a migration's destination continues it ({@link dev.ferry.hypervisor.console.ConsoleHistory#continueFrom}).
     */
    default Optional<dev.ferry.hypervisor.console.ConsoleHistory> console() {
        return Optional.empty();
    }

    /**
     * Sends {@code data} to the guest's serial console. Never blocks for long: input the guest does
     * not read fills a bounded buffer, and then this throws.
     */
    default void consoleInput(byte[] data) throws HypervisorException {
        throw new HypervisorException("console input", "the VM's console takes no input");
    }

    /** The guest's own progress counter (the test guest's heartbeat), when the driver can read one. */
    default long heartbeat() {
        return -1;
    }

    /**
     * The fence: stops the guest from executing at once, without the hypervisor's cooperation
     * (QEMU: SIGSTOP of its process, which then answers nothing until thawed). Unlike {@link
     * #pause()} it needs no answer from the hypervisor, so it works on a wedged one. Idempotent.
     */
    default void freeze() throws HypervisorException {
        // A driver that cannot freeze: the fence kills instead (VmRegistry falls back to close()).
        throw new HypervisorException("freeze", "the VM cannot be frozen");
    }

    /**
     * Lets a frozen guest execute again. Its lease must be current first: a guest whose lease has
     * lapsed stops again at once.
     */
    default void thaw() throws HypervisorException {}

    /** True while the guest cannot execute because it is frozen (by {@link #freeze} or by its lapsed lease). */
    default boolean frozen() {
        return false;
    }

    /**
     * True when the guest keeps running if the agent process ends (a separate hypervisor process
     * under a lease), so a restarted agent can adopt it; false when it lives inside the agent.
     */
    default boolean survivesAgent() {
        return false;
    }

    /**
     * Lets go of the VM without ending it, for an agent that exits and will adopt it again
     * ({@link HypervisorDriver#adopt}); the files stay. Where the guest cannot outlive the agent
     * this is {@link #close()}.
     */
    default void detach() {
        close();
    }

    /** Called once if the VM ends without being asked to (the hypervisor process died). */
    void onUnexpectedExit(Consumer<String> listener);

    @Override
    void close();
}
