package dev.ferry.rpc;

/**
 * How many calls one caller may make: {@code burst} at once, refilled at {@code perSecond}. A
 * token bucket, the shape operators know from API gateways: a script creating fifty VMs in a loop
 * gets through, a loop gone wrong (or a stolen key) cannot fill ZooKeeper with intents.
 */
public record RateLimit(double perSecond, int burst) {
    public RateLimit {
        if (!(perSecond > 0) || Double.isInfinite(perSecond)) {
            throw new IllegalArgumentException("a rate limit needs a positive rate per second, got " + perSecond);
        }
        if (burst < 1) {
            throw new IllegalArgumentException("a rate limit needs a burst of at least 1, got " + burst);
        }
    }

    @Override
    public String toString() {
        return (perSecond == Math.rint(perSecond) ? String.valueOf((long) perSecond) : String.valueOf(perSecond))
                + "/s (burst " + burst + ")";
    }

    /**
     * One caller's bucket. Pure arithmetic on the times it is given (nanoseconds from any fixed
     * origin, e.g. {@link System#nanoTime()}), so it is tested without a clock.
     */
    public static final class Bucket {
        private final RateLimit limit;
        private double tokens;
        private long lastNanos;

        public Bucket(RateLimit limit, long nowNanos) {
            this.limit = limit;
            this.tokens = limit.burst();
            this.lastNanos = nowNanos;
        }

        /**
         * Takes one call's token: 0 when the call may go ahead, else how many nanoseconds until it
         * could (nothing is taken then, so a refused caller does not dig itself deeper).
         */
        public synchronized long take(long nowNanos) {
            long elapsed = Math.max(0, nowNanos - lastNanos);
            lastNanos = Math.max(lastNanos, nowNanos);
            tokens = Math.min(limit.burst(), tokens + elapsed * limit.perSecond() / 1e9);
            if (tokens >= 1) {
                tokens -= 1;
                return 0;
            }
            return (long) Math.ceil((1 - tokens) * 1e9 / limit.perSecond());
        }
    }
}
