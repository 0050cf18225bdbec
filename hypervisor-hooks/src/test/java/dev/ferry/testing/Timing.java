package dev.ferry.testing;

import java.time.Duration;
import java.util.function.BooleanSupplier;

/**
 * The suite's one timing knob: every test timeout is a base figure times
 * {@code ferry.timing.multiplier} (system property, or the FERRY_TIMING_MULTIPLIER environment
 * variable), so a slow machine raises one number instead of editing tests.
 */
public final class Timing {
    private Timing() {}

    public static double multiplier() {
        String v = System.getProperty("ferry.timing.multiplier");
        if (v == null || v.isBlank()) {
            v = System.getenv("FERRY_TIMING_MULTIPLIER");
        }
        if (v == null || v.isBlank()) {
            return 1.0;
        }
        double m = Double.parseDouble(v.trim());
        if (!(m > 0)) {
            throw new IllegalArgumentException("ferry.timing.multiplier must be positive, got " + v);
        }
        return m;
    }

    public static Duration scaled(Duration base) {
        return Duration.ofNanos((long) (base.toNanos() * multiplier()));
    }

    public static Duration seconds(double s) {
        return scaled(Duration.ofMillis((long) (s * 1000)));
    }

    /** Polls until {@code condition} holds; fails with {@code what} after the scaled timeout. */
    public static void await(String what, Duration base, BooleanSupplier condition) {
        long deadline = System.nanoTime() + scaled(base).toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + scaled(base).toMillis() + " ms waiting for " + what);
            }
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError("interrupted waiting for " + what);
            }
        }
    }
}
