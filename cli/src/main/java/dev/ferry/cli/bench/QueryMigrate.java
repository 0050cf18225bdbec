package dev.ferry.cli.bench;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * One answer of QEMU's {@code query-migrate} on the source, as the benchmark uses it. Absent
 * fields read as 0 (QEMU leaves out what does not apply: no {@code downtime} while active, no
 * {@code ram} during setup, no {@code disk} without block migration).
 *
 * @param status setup, active, completed, failed, cancelling, cancelled, ...
 * @param totalTimeMs QEMU's {@code total-time}: from {@code migrate} to the end on the source
 *     (elapsed so far while active); excludes the destination's start and its resume
 * @param downtimeMs QEMU's {@code downtime}: from stopping the source to the end of sending, as the
 *     source sees it (not until the destination runs)
 * @param ramTransferred {@code ram.transferred}: bytes of the RAM stream, multifd channels included
 * @param diskTransferred {@code disk.transferred} (block migration; 0 here)
 * @param dirtySyncCount {@code ram.dirty-sync-count}: dirty-bitmap syncs, the first (setup) and the
 *     last (after the stop) included: QEMU's count of rounds
 * @param cpuThrottlePercent {@code cpu-throttle-percentage} (auto-converge), 0 when not throttling
 */
record QueryMigrate(
        String status,
        long totalTimeMs,
        long downtimeMs,
        long setupTimeMs,
        long expectedDowntimeMs,
        long ramTransferred,
        long ramTotal,
        long ramRemaining,
        long duplicatePages,
        long normalPages,
        long multifdBytes,
        long dirtySyncCount,
        double mbps,
        long dirtyPagesRate,
        long diskTransferred,
        int cpuThrottlePercent,
        String error) {

    static QueryMigrate parse(JsonNode r) {
        JsonNode ram = r.path("ram");
        return new QueryMigrate(
                r.path("status").asText("none"),
                r.path("total-time").asLong(0),
                r.path("downtime").asLong(0),
                r.path("setup-time").asLong(0),
                r.path("expected-downtime").asLong(0),
                ram.path("transferred").asLong(0),
                ram.path("total").asLong(0),
                ram.path("remaining").asLong(0),
                ram.path("duplicate").asLong(0),
                ram.path("normal").asLong(0),
                ram.path("multifd-bytes").asLong(0),
                ram.path("dirty-sync-count").asLong(0),
                ram.path("mbps").asDouble(0),
                ram.path("dirty-pages-rate").asLong(0),
                r.path("disk").path("transferred").asLong(0),
                r.path("cpu-throttle-percentage").asInt(0),
                r.has("error-desc") ? r.get("error-desc").asText() : null);
    }

    /**
     * Bytes on the wire as QEMU counts them: the RAM stream (page headers, multifd packets) and
     * block migration. QEMU counts no figure for the device-state sections of the main stream
     * (tens of KiB for these guests).
     */
    long wireBytes() {
        return ramTransferred + diskTransferred;
    }

    boolean completed() {
        return status.equals("completed");
    }

    /** No longer running: completed, failed or cancelled. */
    boolean ended() {
        return switch (status) {
            case "completed", "failed", "cancelled" -> true;
            default -> false;
        };
    }
}
