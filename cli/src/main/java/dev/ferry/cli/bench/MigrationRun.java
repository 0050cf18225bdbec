package dev.ferry.cli.bench;

import java.util.Locale;
import java.util.Map;

/**
 * The figures of one measured migration, Ferry's or QEMU's, defined the same way for both where
 * they can be (see docs/BENCHMARKS.md, "Ferry vs QEMU's own migration"):
 *
 * @param totalMs end to end: from the request (Ferry: the Migrate call, which prepares the
 *     destination; QEMU: launching the destination QEMU) until the guest runs on the destination;
 *     for a migration that did not converge, the time it was given before it was cancelled
 * @param downtimeMs from the source's pause until the guest runs on the destination (QEMU: the
 *     source's STOP event to the destination's RESUME event); NaN when it never switched over
 * @param wireBytes bytes the migration put on the wire, as each counts them (Ferry: encoded page
 *     batches and device state; QEMU: {@code ram.transferred})
 * @param rounds Ferry: rounds sent, round 0 and the final one included; QEMU: dirty-sync-count
 * @param migrationCpuSeconds CPU the migration cost on this machine: both agents (Ferry) plus both
 *     QEMU processes, minus what the guest itself used at its pre-migration rate while it ran
 * @param agentCpuSeconds both agents' CPU (Ferry); NaN for QEMU, which has no agent
 * @param qemuCpuSeconds both QEMUs' CPU minus the guest's own, the QEMU part of {@code migrationCpuSeconds}
 * @param guestRateBefore the guest's page writes per second before the migration (NaN if unknown)
 * @param guestRateDuring the same while the migration ran on the source (NaN if too short to tell)
 * @param staleLines STALE lines the guest printed on the destination: pages it found not holding
 *     what it had last written (checked when it rewrites a page, so only pages rewritten during the
 *     observation window are checked); -1 when the guest never ran there
 * @param staleCounter the guest's own stale counter, highest value seen on the destination
 * @param guestAlive the guest's heartbeat advanced on the destination
 * @param guestRestarted the guest booted again on the destination (a second "start" line)
 * @param note what happened when it was not a plain completion (forced switchover, cancel, error)
 * @param detail everything else, for --json
 */
record MigrationRun(
        Mode mode,
        long guestBytes,
        BenchWorkload workload,
        int repeat,
        Outcome outcome,
        double totalMs,
        double downtimeMs,
        long wireBytes,
        long rounds,
        double migrationCpuSeconds,
        double agentCpuSeconds,
        double qemuCpuSeconds,
        double guestRateBefore,
        double guestRateDuring,
        int staleLines,
        long staleCounter,
        boolean guestAlive,
        boolean guestRestarted,
        String note,
        Map<String, Object> detail) {

    /** Who migrates, and how. */
    enum Mode {
        FERRY("ferry", "Ferry pre-copy"),
        QEMU_SINGLE("qemu-single", "QEMU, one stream"),
        QEMU_MULTIFD("qemu-multifd", "QEMU, multifd"),
        QEMU_MULTIFD_AC("qemu-multifd-ac", "QEMU, multifd + auto-converge"),
        /**
         * Reference: QEMU multifd with its own anonymous guest RAM (transparent huge pages where the
         * host allows), not the driver's shared RAM file. Not how a Ferry host runs guests; how QEMU
         * runs them by default.
         */
        QEMU_MULTIFD_ANON("qemu-multifd-anon", "QEMU, multifd, its own anonymous RAM");

        final String id;
        final String description;

        Mode(String id, String description) {
            this.id = id;
            this.description = description;
        }

        boolean qemu() {
            return this != FERRY;
        }

        boolean multifd() {
            return this == QEMU_MULTIFD || this == QEMU_MULTIFD_AC || this == QEMU_MULTIFD_ANON;
        }

        static Mode parse(String s) {
            for (Mode m : values()) {
                if (m.id.equals(s.trim().toLowerCase(Locale.ROOT))) {
                    return m;
                }
            }
            throw new IllegalArgumentException("unknown mode '" + s + "': use ferry, qemu-single, qemu-multifd, "
                    + "qemu-multifd-ac or qemu-multifd-anon");
        }
    }

    /** How a migration ended. */
    enum Outcome {
        /** Converged within the downtime limit and completed. */
        COMPLETED("completed"),
        /** Did not converge; the switchover was forced (Ferry's policy), with a longer pause than asked. */
        FORCED("forced switchover"),
        /** Did not converge within the time it was given; cancelled, the guest kept running on the source. */
        NOT_CONVERGED("not converged, cancelled"),
        FAILED("failed");

        final String label;

        Outcome(String label) {
            this.label = label;
        }

        /** The guest reached the destination. */
        boolean switchedOver() {
            return this == COMPLETED || this == FORCED;
        }
    }
}
