package dev.ferry.hypervisor;

/**
 * What this host offers a migration.
 *
 * @param dirtyTracking true when the driver can track guest writes for Ferry's own pre-copy
 * @param dirtyTrackingDetail what the probe found, or what is missing and why
 * @param hypervisorNativeMigration true when the hypervisor's own migration stream can be tunnelled
 */
public record HostCapabilities(boolean dirtyTracking, String dirtyTrackingDetail, boolean hypervisorNativeMigration) {}
