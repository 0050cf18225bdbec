package dev.ferry.rpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class RateLimitTest {
    private static final long SECOND = 1_000_000_000L;

    @Test
    void aBurstGoesThroughThenCallsWaitForTheRate() {
        RateLimit.Bucket b = new RateLimit.Bucket(new RateLimit(2, 3), 0);
        assertEquals(0, b.take(0));
        assertEquals(0, b.take(0));
        assertEquals(0, b.take(0));
        assertEquals(SECOND / 2, b.take(0), "the fourth waits for half a second at 2/s");
        assertEquals(SECOND / 4, b.take(SECOND / 4), "a refused call takes nothing");
        assertEquals(0, b.take(SECOND / 2));
        assertTrue(b.take(SECOND / 2) > 0);
    }

    @Test
    void tokensNeverExceedTheBurst() {
        RateLimit.Bucket b = new RateLimit.Bucket(new RateLimit(10, 2), 0);
        long t = 3600 * SECOND;
        assertEquals(0, b.take(t));
        assertEquals(0, b.take(t));
        assertTrue(b.take(t) > 0, "an hour of quiet still allows only the burst");
    }

    @Test
    void aClockGoingBackwardsAddsNothing() {
        RateLimit.Bucket b = new RateLimit.Bucket(new RateLimit(1, 1), 10 * SECOND);
        assertEquals(0, b.take(10 * SECOND));
        assertTrue(b.take(5 * SECOND) > 0);
        assertTrue(b.take(10 * SECOND) > 0);
        assertEquals(0, b.take(11 * SECOND));
    }

    @Test
    void nonsenseLimitsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new RateLimit(0, 1));
        assertThrows(IllegalArgumentException.class, () -> new RateLimit(Double.NaN, 1));
        assertThrows(IllegalArgumentException.class, () -> new RateLimit(1, 0));
        assertEquals("20/s (burst 100)", new RateLimit(20, 100).toString());
    }
}
