package dev.ferry.chaos.schedule;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

class ScheduleTest {
    /** A plan like scenario 19's: random daemons killed at random moments. */
    static Schedule plan(long seed, String scenario) {
        Schedule.Planner p = new Schedule.Planner(seed, scenario);
        long t = 0;
        for (int i = 0; i < 20; i++) {
            t += p.between(500, 3000);
            p.step(t, "kill", "target", p.pick(List.of("agent host-1", "agent host-2", "coordinator-1", "zk-2")));
        }
        return p.build();
    }

    @Test
    void theSameSeedPlansTheSameScheduleAndAnotherSeedAnother() {
        assertEquals(plan(42, "19-kill-random"), plan(42, "19-kill-random"));
        assertEquals(
                plan(42, "19-kill-random").describe(),
                plan(42, "19-kill-random").describe());
        assertNotEquals(
                plan(42, "19-kill-random").steps(), plan(43, "19-kill-random").steps());
        assertNotEquals(
                plan(42, "19-kill-random").steps(),
                plan(42, "1-kill-destination").steps());
    }

    @Test
    void describesTheSeedAndEveryStep() {
        String d = plan(7, "x").describe();
        assertEquals("scenario x seed 7", d.lines().findFirst().orElseThrow());
        assertEquals(21, d.lines().count());
    }
}
