package dev.ferry.cluster.coordinator;

import java.time.Duration;

/** Clocks a test moves by hand: the monotonic one only forward, the wall clock anywhere. */
final class ManualClocks implements Clocks {
    private long nanos = 1_000_000_000L;
    private long wallMillis = 1_800_000_000_000L;

    @Override
    public synchronized long nanoTime() {
        return nanos;
    }

    @Override
    public synchronized long wallMillis() {
        return wallMillis;
    }

    /** Time passes: both clocks move. */
    synchronized void pass(Duration d) {
        nanos += d.toNanos();
        wallMillis += d.toMillis();
    }

    /** The wall clock is stepped (NTP, an operator); monotonic time does not move. */
    synchronized void stepWall(Duration d) {
        wallMillis += d.toMillis();
    }
}
