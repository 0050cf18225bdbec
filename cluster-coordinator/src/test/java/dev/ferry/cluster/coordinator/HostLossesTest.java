package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.api.Test;

/** The failover margin runs on the monotonic clock: the wall clock only says when, for operators. */
class HostLossesTest {
    static final Duration MARGIN = Duration.ofSeconds(2);

    @Test
    void aWallClockStepForwardDoesNotShortenTheFailoverMargin() {
        ManualClocks clocks = new ManualClocks();
        HostLosses losses = new HostLosses(clocks);
        long shownAt = losses.lost("h1").wallMillis();

        clocks.stepWall(Duration.ofHours(1)); // NTP catches up an hour
        clocks.pass(Duration.ofMillis(1999));
        assertFalse(losses.marginPassed("h1", MARGIN), "1.999 s after the loss, whatever the wall clock says");
        clocks.pass(Duration.ofMillis(1));
        assertTrue(losses.marginPassed("h1", MARGIN));
        assertEquals(shownAt, losses.lostAtMillis("h1"), "the time shown is the wall clock's at the loss");
    }

    @Test
    void aWallClockStepBackDoesNotLengthenTheFailoverMargin() {
        ManualClocks clocks = new ManualClocks();
        HostLosses losses = new HostLosses(clocks);
        losses.lost("h1");

        clocks.stepWall(Duration.ofHours(-1));
        clocks.pass(MARGIN);
        assertTrue(losses.marginPassed("h1", MARGIN), "2 s after the loss, though the wall clock went back an hour");
    }

    @Test
    void aHostGoneBeforeTheTermBeganWaitsAWholeMarginFromTheTermsStart() {
        ManualClocks clocks = new ManualClocks();
        HostLosses losses = new HostLosses(clocks);
        clocks.stepWall(Duration.ofDays(1));
        clocks.pass(MARGIN.minusMillis(1));
        assertFalse(losses.marginPassed("never-seen", MARGIN));
        clocks.pass(Duration.ofMillis(1));
        assertTrue(losses.marginPassed("never-seen", MARGIN));
    }
}
