package dev.ferry.migration.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.migration.policy.ConvergencePolicy.Continue;
import dev.ferry.migration.policy.ConvergencePolicy.Decision;
import dev.ferry.migration.policy.ConvergencePolicy.ForcedSwitchover;
import dev.ferry.migration.policy.ConvergencePolicy.GiveUp;
import dev.ferry.migration.policy.ConvergencePolicy.Inputs;
import dev.ferry.migration.policy.ConvergencePolicy.OnTimeout;
import dev.ferry.migration.policy.ConvergencePolicy.Settings;
import dev.ferry.migration.policy.ConvergencePolicy.Switchover;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

class ConvergencePolicyTest {
    private static final double GB_S = 1e9;
    private static final Settings LIMIT_100MS =
            new Settings(Duration.ofMillis(100), 10, Duration.ofSeconds(60), 3, OnTimeout.FORCE_SWITCHOVER);

    private static Inputs inputs(int rounds, long remaining, List<Long> history) {
        return new Inputs(rounds, remaining, GB_S, Double.NaN, Duration.ofSeconds(1), Duration.ofMillis(10), history);
    }

    @Test
    void switchesOverWhenTheRestFitsTheDowntimeBudget() {
        // 50 MB at 1 GB/s is 50 ms, plus 10 ms of fixed cost: inside 100 ms.
        Decision d = ConvergencePolicy.decide(LIMIT_100MS, inputs(2, 50_000_000, List.of()));
        assertInstanceOf(Switchover.class, d);
        assertEquals(60, d.expectedDowntime().toMillis());
    }

    private static Inputs dirtying(int rounds, long remaining, double dirtyRate, List<Long> history) {
        return new Inputs(rounds, remaining, GB_S, dirtyRate, Duration.ofSeconds(1), Duration.ofMillis(10), history);
    }

    /**
     * The regression: the policy switched over as soon as the rest fitted the limit, so a 32 MiB
     * working set paused the guest for 100-300 ms where one more 40 ms round leaves almost nothing.
     */
    @Test
    void takesOneMoreRoundWhenItHalvesThePauseCheaply() {
        // 30 MB at 1 GB/s: a 30 ms round, during which a guest at 8 MB/s dirties 0.24 MB.
        Decision d = ConvergencePolicy.decide(LIMIT_100MS, dirtying(2, 30_000_000, 8e6, List.of(1_000_000_000L)));
        assertInstanceOf(Continue.class, d);
        assertEquals(40, d.expectedDowntime().toMillis());
    }

    @Test
    void switchesOverOnceTheRestIsNegligible() {
        // 1 MB at 1 GB/s is 1 ms: not worth another round.
        assertInstanceOf(
                Switchover.class,
                ConvergencePolicy.decide(LIMIT_100MS, dirtying(3, 1_000_000, 8e6, List.of(30_000_000L))));
    }

    @Test
    void switchesOverWhenTheGuestWouldDirtyMoreThanHalfAgain() {
        // 60 MB at 1 GB/s takes 60 ms, during which a guest at 600 MB/s dirties 36 MB: barely a gain.
        assertInstanceOf(
                Switchover.class,
                ConvergencePolicy.decide(LIMIT_100MS, dirtying(2, 60_000_000, 600e6, List.of(900_000_000L))));
    }

    @Test
    void switchesOverWhenTheLastExtraRoundDidNotHalveTheRest() {
        // Predicted to shrink, but the previous round only went from 30 to 20 MB (a hot set rewritten at once).
        assertInstanceOf(
                Switchover.class,
                ConvergencePolicy.decide(
                        LIMIT_100MS, dirtying(3, 20_000_000, 8e6, List.of(900_000_000L, 30_000_000L))));
    }

    @Test
    void neverTakesAnExtraRoundPastTheRoundLimit() {
        Decision d = ConvergencePolicy.decide(LIMIT_100MS, dirtying(11, 30_000_000, 8e6, List.of(1_000_000_000L)));
        assertInstanceOf(Switchover.class, d);
    }

    @Test
    void switchesOverAtOnceWhenNothingIsDirty() {
        Inputs noBandwidth = new Inputs(1, 0, 0, Double.NaN, Duration.ZERO, Duration.ofMillis(500), List.of());
        assertInstanceOf(Switchover.class, ConvergencePolicy.decide(LIMIT_100MS, noBandwidth));
    }

    @Test
    void continuesWhileTheRestIsTooLargeAndShrinking() {
        Decision d = ConvergencePolicy.decide(LIMIT_100MS, inputs(2, 500_000_000, List.of(900_000_000L)));
        assertInstanceOf(Continue.class, d);
        assertEquals(510, d.expectedDowntime().toMillis());
    }

    @Test
    void fixedCostAloneCanExceedTheBudget() {
        Inputs in = new Inputs(2, 1_000, GB_S, Double.NaN, Duration.ZERO, Duration.ofMillis(150), List.of());
        assertInstanceOf(Continue.class, ConvergencePolicy.decide(LIMIT_100MS, in));
    }

    @Test
    void forcesTheSwitchoverAtTheRoundLimit() {
        Decision d = ConvergencePolicy.decide(LIMIT_100MS, inputs(11, 500_000_000, List.of()));
        ForcedSwitchover f = assertInstanceOf(ForcedSwitchover.class, d);
        assertTrue(f.reason().contains("10 rounds"), f.reason());
    }

    @Test
    void cancelsAtTheTimeLimitWhenAskedTo() {
        Settings cancel = new Settings(Duration.ofMillis(100), 10, Duration.ofSeconds(5), 3, OnTimeout.CANCEL);
        Inputs late = new Inputs(
                3, 500_000_000, GB_S, Double.NaN, Duration.ofSeconds(5), Duration.ZERO, List.of(600_000_000L));
        GiveUp g = assertInstanceOf(GiveUp.class, ConvergencePolicy.decide(cancel, late));
        assertTrue(g.reason().contains("time limit"), g.reason());
    }

    @Test
    void givesUpEarlyWhenTheDirtySetStopsShrinking() {
        List<Long> history = List.of(900L << 20, 400L << 20, 410L << 20, 405L << 20);
        Decision d = ConvergencePolicy.decide(LIMIT_100MS, inputs(5, 420L << 20, history));
        ForcedSwitchover f = assertInstanceOf(ForcedSwitchover.class, d);
        assertTrue(f.reason().contains("stopped shrinking"), f.reason());
    }

    @Test
    void aNewLowIsProgress() {
        assertFalse(ConvergencePolicy.stalled(List.of(900L, 400L, 410L, 405L), 399L, 3));
        assertTrue(ConvergencePolicy.stalled(List.of(900L, 400L, 410L, 405L), 400L, 3));
        assertFalse(ConvergencePolicy.stalled(List.of(900L), 1000L, 3), "too few rounds to call it a stall");
    }

    @Test
    void noBandwidthMeansUnboundedDowntime() {
        assertTrue(ConvergencePolicy.expectedDowntime(1, 0, Duration.ZERO).toHours() >= 24);
    }

    @Test
    void settingsRejectNonsense() {
        assertThrows(
                IllegalArgumentException.class,
                () -> new Settings(Duration.ZERO, 1, Duration.ofSeconds(1), 1, OnTimeout.CANCEL));
        assertThrows(
                IllegalArgumentException.class,
                () -> new Settings(Duration.ofMillis(1), 0, Duration.ofSeconds(1), 1, OnTimeout.CANCEL));
    }
}
