package dev.ferry.cluster.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.api.Test;

class FencePolicyTest {
    @Test
    void aPartitionedHostFencesASixthOfTheSessionAfterSuspended() {
        assertEquals(Duration.ofMillis(1666), FencePolicy.fenceDelay(Duration.ofSeconds(10)));
        assertEquals(Duration.ofMillis(500), FencePolicy.fenceDelay(Duration.ofSeconds(3)));
    }

    @Test
    void theFenceComesBeforeTheSessionCanExpireWhateverTheTimeout() {
        for (long ms : new long[] {1000, 2000, 3000, 4000, 10_000, 30_000, 120_000}) {
            Duration t = Duration.ofMillis(ms);
            FencePolicy.Timeline tl = FencePolicy.timeline(t, Duration.ZERO);
            assertTrue(tl.suspended().compareTo(tl.fence()) < 0, "fence after SUSPENDED for " + ms);
            assertTrue(tl.fence().compareTo(tl.expiry()) < 0, "fence before expiry for " + ms);
            // A sixth of the session is left for the kill itself, even with no failover margin.
            assertTrue(tl.expiry().minus(tl.fence()).compareTo(t.dividedBy(7)) > 0, "room for the kill for " + ms);
        }
    }

    @Test
    void theSlackBetweenFenceAndRestartIsASixthOfTheSessionPlusTheMargin() {
        FencePolicy.Timeline tl = FencePolicy.timeline(Duration.ofSeconds(10), Duration.ofSeconds(2));
        assertEquals(Duration.ofMillis(6666), tl.suspended());
        assertEquals(Duration.ofMillis(8332), tl.fence());
        assertEquals(Duration.ofSeconds(12), tl.restart());
        assertEquals(Duration.ofMillis(3668), tl.slack());
    }

    @Test
    void afterSilenceTheDeadlineIsASixthOfTheSessionAfterSuspended() {
        Duration t = Duration.ofSeconds(12);
        long suspended = 100_000_000_000L;
        // Silence: the last answered probe was sent before the connection went quiet, 2T/3 ago and more.
        long probe = suspended - Duration.ofMillis(8000 + 1000).toNanos();
        assertEquals(suspended + Duration.ofSeconds(2).toNanos(), FencePolicy.fenceDeadline(t, suspended, probe));
        assertEquals(
                suspended + Duration.ofSeconds(2).toNanos(), FencePolicy.fenceDeadline(t, suspended, Long.MIN_VALUE));
    }

    @Test
    void afterABrokenConnectionARecentProbeGivesTheReconnectionMoreTime() {
        Duration t = Duration.ofSeconds(12);
        long suspended = 100_000_000_000L;
        // The connection broke (a server restarting) a second after an answered probe: the session
        // lives at least until that probe's send time + T, so the fence may wait until 5T/6 after it.
        long probe = suspended - Duration.ofSeconds(1).toNanos();
        long deadline = FencePolicy.fenceDeadline(t, suspended, probe);
        assertEquals(probe + Duration.ofSeconds(10).toNanos(), deadline);
        assertTrue(deadline - suspended > Duration.ofSeconds(8).toNanos());
        // Always a sixth of the session before the earliest possible expiry.
        assertTrue(probe + t.toNanos() - deadline >= Duration.ofSeconds(2).toNanos());
    }

    @Test
    void theDefaultMarginIsAFifthOfTheSessionButNeverUnderHalfASecond() {
        assertEquals(Duration.ofSeconds(2), FencePolicy.defaultFailoverMargin(Duration.ofSeconds(10)));
        assertEquals(Duration.ofMillis(500), FencePolicy.defaultFailoverMargin(Duration.ofSeconds(2)));
    }

    @Test
    void sessionsShorterThanASecondAndNegativeMarginsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> FencePolicy.fenceDelay(Duration.ofMillis(999)));
        assertThrows(
                IllegalArgumentException.class,
                () -> FencePolicy.timeline(Duration.ofSeconds(5), Duration.ofMillis(-1)));
    }

    @Test
    void aLeaseEndsASixthOfTheSessionBeforeTheSessionCanExpire() {
        for (long ms : new long[] {1000, 4000, 10_000, 30_000}) {
            Duration t = Duration.ofMillis(ms);
            Duration lease = FencePolicy.leaseValidity(t);
            // Counted from a probe ZooKeeper answered: the server saw the session no earlier, so the
            // earliest expiry is that probe + T; the guest has stopped T/6 before it.
            org.junit.jupiter.api.Assertions.assertEquals(t.minus(FencePolicy.fenceDelay(t)), lease);
            org.junit.jupiter.api.Assertions.assertTrue(lease.compareTo(t) < 0);
            org.junit.jupiter.api.Assertions.assertTrue(
                    lease.compareTo(FencePolicy.timeline(t, FencePolicy.defaultFailoverMargin(t))
                                    .restart())
                            < 0);
        }
    }
}
