package dev.ferry.cluster.coordinator;

/**
 * The two clocks of a coordinator, injectable for tests. Every wait, margin and timeout of the
 * leader is measured on {@link #nanoTime()} (monotonic); {@link #wallMillis()} only stamps records
 * and views for operators to read. A wall-clock step (NTP, an operator) must neither bring a
 * restart forward nor hold one back.
 */
public interface Clocks {
    /** Monotonic nanoseconds ({@link System#nanoTime()}): for every decision. */
    long nanoTime();

    /**
     * Wall-clock milliseconds: to stamp records and views for operators, and to age out by date what
     * only operators read (migration reports, {@link MigrationReports}); never for a decision on a VM.
     */
    long wallMillis();

    Clocks SYSTEM = new Clocks() {
        @Override
        public long nanoTime() {
            return System.nanoTime();
        }

        @Override
        public long wallMillis() {
            return System.currentTimeMillis();
        }
    };
}
