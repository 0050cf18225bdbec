package dev.ferry.hypervisor;

/** Lifecycle of a {@link VmInstance}. */
public enum InstanceState {
    /** Defined, RAM allocated, never started. */
    CREATED,
    /** Destination of a migration: waiting for pages and device state. */
    INCOMING,
    RUNNING,
    PAUSED,
    /** Powered off or ended; only {@link VmInstance#close()} remains. */
    STOPPED,
    /** Ended unexpectedly (hypervisor died). */
    FAILED,
    CLOSED
}
