package dev.ferry.migration.precopy;

/**
 * Caps the sending rate of all lanes together (--max-bandwidth), as a token bucket holding at most
 * a tenth of a second of credit so a pause is not followed by a burst.
 */
final class RateLimiter {
    // Changed while lanes send (`ferry migrate set`): read and written under the lock.
    private double bytesPerNano;
    private double capacity;
    private double available;
    private long last;

    /** {@code bytesPerSecond} 0 means unlimited. */
    RateLimiter(long bytesPerSecond) {
        this.bytesPerNano = bytesPerSecond / 1e9;
        this.capacity = bytesPerSecond / 10.0;
        this.available = capacity;
        this.last = System.nanoTime();
    }

    synchronized boolean unlimited() {
        return bytesPerNano == 0;
    }

    /** From now on, {@code bytesPerSecond} (0: unlimited); the credit is kept within the new cap. */
    synchronized void setRate(long bytesPerSecond) {
        bytesPerNano = bytesPerSecond / 1e9;
        capacity = bytesPerSecond / 10.0;
        available = Math.min(available, capacity);
        last = System.nanoTime();
    }

    void acquire(long bytes) throws InterruptedException {
        long waitNanos;
        synchronized (this) {
            if (bytesPerNano == 0) {
                return;
            }
            long now = System.nanoTime();
            available = Math.min(capacity, available + (now - last) * bytesPerNano);
            last = now;
            available -= bytes;
            waitNanos = available >= 0 ? 0 : (long) (-available / bytesPerNano);
        }
        if (waitNanos > 0) {
            Thread.sleep(waitNanos / 1_000_000, (int) (waitNanos % 1_000_000));
        }
    }
}
