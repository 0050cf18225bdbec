package dev.ferry.cluster.policy;

/**
 * A drain's bandwidth cap is for the whole drain (`ferry host drain --max-bandwidth`), not per
 * move: an operator sizes it to what the host's link can spare. Each live migration of the drain
 * gets an even share when it starts, and the running ones are raised to the share of fewer when
 * fewer moves are left than may run at once (the drain's tail).
 */
public final class DrainBandwidth {
    private DrainBandwidth() {}

    /**
     * The cap of a migration the drain starts now, or raises a running one to: {@code total} split between the migrations that
     * can run beside it, at most {@code parallel}, and no more than the live moves still to end
     * ({@code open}, counting this one). 0 (no cap) stays 0.
     *
     * <p>The sum over the running migrations never exceeds {@code total}: each one running got a
     * share computed when at least as many moves were open as now, and at most {@code min(parallel,
     * open)} run at once.
     */
    public static long share(long total, int parallel, int open) {
        if (total < 0 || parallel < 1 || open < 1) {
            throw new IllegalArgumentException(
                    "bandwidth " + total + ", parallel " + parallel + ", open moves " + open);
        }
        if (total == 0) {
            return 0;
        }
        // At least a byte a second: 0 would mean no cap at all.
        return Math.max(1, total / Math.min(parallel, open));
    }
}
