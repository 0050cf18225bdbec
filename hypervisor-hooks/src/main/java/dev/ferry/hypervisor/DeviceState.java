package dev.ferry.hypervisor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.time.Duration;

/**
 * The non-RAM state of a VM (vCPUs, devices), moved at switchover. Both ends stream it, so a
 * hypervisor's own migration stream can be tunnelled through the agents unchanged.
 */
public interface DeviceState {
    /** What a save carries. */
    enum Scope {
        /** Device state only; guest RAM is moved by Ferry. The VM must be paused. */
        DEVICES,
        /**
         * The hypervisor's own migration of everything, RAM included, while the VM runs; the
         * hypervisor pauses the VM when its stream ends.
         */
        EVERYTHING
    }

    /** Receives the saved state in order. */
    interface Sink {
        void write(ByteBuffer chunk) throws IOException;
    }

    /** The destination half: takes chunks in order, then loads them into the VM. */
    interface Loader extends AutoCloseable {
        void write(ByteBuffer chunk) throws IOException;

        /** All chunks given: waits until the hypervisor has loaded the state. The VM stays paused. */
        void finish(Duration timeout) throws HypervisorException;

        /** Abandons the load. */
        @Override
        void close();
    }

    /**
     * How a save may run: how long it may take, and, for {@link Scope#EVERYTHING}, the hypervisor's
     * own downtime limit and bandwidth cap (0 for none).
     */
    record SaveLimits(Duration timeout, Duration downtimeLimit, long maxBandwidth) {
        public static SaveLimits of(Duration timeout) {
            return new SaveLimits(timeout, Duration.ofMillis(300), 0);
        }
    }

    /**
     * Does ahead, while the VM still runs, what a later {@link #save} of this scope with these limits
     * would otherwise do inside the pause (a hypervisor's migration settings). Optional: a save
     * works without it, and one with another scope or limits redoes the set-up.
     */
    default void prepareSave(Scope scope, SaveLimits limits) throws HypervisorException {}

    /** Streams the state to {@code sink}; returns the byte count once the hypervisor is done. */
    long save(Scope scope, Sink sink, SaveLimits limits) throws HypervisorException;

    /**
     * Opens the destination half. The hypervisor then waits for the stream, so a destination may
     * call this as soon as the migration starts and keep the set-up out of the pause.
     */
    Loader load(Scope scope) throws HypervisorException;

    /**
     * True when the hypervisor can pause the VM itself as part of a device-state save
     * ({@link #saveAndPause}), which keeps the save's set-up out of the pause.
     */
    default boolean pausesForSave() {
        return false;
    }

    /**
     * A {@link Scope#DEVICES} save started on the running VM: the hypervisor pauses the VM itself
     * once its save is set up, then streams the state. Before returning it tells {@code pausedAt}
     * when the VM stopped (the hypervisor's own clock on this host), which is where the downtime
     * begins. If the save fails, the VM may be running again or paused: {@link VmInstance#resume}
     * settles it. Only when {@link #pausesForSave()}.
     */
    default long saveAndPause(Sink sink, SaveLimits limits, java.util.function.Consumer<java.time.Instant> pausedAt)
            throws HypervisorException {
        throw new UnsupportedOperationException("this driver pauses the VM before a device-state save");
    }
}
