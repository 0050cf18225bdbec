package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Duration;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** How long a VM has run at its epoch, as the leader watched it, for the reset of its restart attempts. */
class StableRunsTest {
    @Test
    void aRestartOrAStopStartsTheStableRunAgainAndTheWallClockDoesNotCount() {
        ManualClocks clocks = new ManualClocks();
        StableRuns runs = new StableRuns(clocks);
        assertEquals(Duration.ZERO, runs.observe("v", 2, true));
        clocks.pass(Duration.ofMinutes(4));
        clocks.stepWall(Duration.ofDays(1));
        assertEquals(Duration.ofMinutes(4), runs.observe("v", 2, true));

        assertEquals(Duration.ZERO, runs.observe("v", 3, true), "restarted at the next epoch: from zero");
        clocks.pass(Duration.ofMinutes(1));
        assertEquals(Duration.ofMinutes(1), runs.observe("v", 3, true));
        assertEquals(Duration.ZERO, runs.observe("v", 3, false), "a pass that finds it not running");
        clocks.pass(Duration.ofMinutes(1));
        assertEquals(Duration.ZERO, runs.observe("v", 3, true));
    }

    @Test
    void aVmThatIsGoneIsForgotten() {
        ManualClocks clocks = new ManualClocks();
        StableRuns runs = new StableRuns(clocks);
        runs.observe("v", 1, true);
        clocks.pass(Duration.ofMinutes(5));
        runs.retain(Set.of());
        assertEquals(Duration.ZERO, runs.observe("v", 1, true), "a new VM of the same name starts from zero");
    }
}
