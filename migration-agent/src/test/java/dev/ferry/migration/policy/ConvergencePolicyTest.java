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
    return new Inputs(rounds, remaining, GB_S, Duration.ofSeconds(1), Duration.ofMillis(10), history);
  }

  @Test
  void switchesOverWhenTheRestFitsTheDowntimeBudget() {
    // 50 MB at 1 GB/s is 50 ms, plus 10 ms of fixed cost: inside 100 ms.
    Decision d = ConvergencePolicy.decide(LIMIT_100MS, inputs(2, 50_000_000, List.of()));
    assertInstanceOf(Switchover.class, d);
    assertEquals(60, d.expectedDowntime().toMillis());
  }

  @Test
  void switchesOverAtOnceWhenNothingIsDirty() {
    Inputs noBandwidth = new Inputs(1, 0, 0, Duration.ZERO, Duration.ofMillis(500), List.of());
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
    Inputs in = new Inputs(2, 1_000, GB_S, Duration.ZERO, Duration.ofMillis(150), List.of());
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
    Inputs late = new Inputs(3, 500_000_000, GB_S, Duration.ofSeconds(5), Duration.ZERO, List.of(600_000_000L));
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
    assertThrows(IllegalArgumentException.class,
        () -> new Settings(Duration.ZERO, 1, Duration.ofSeconds(1), 1, OnTimeout.CANCEL));
    assertThrows(IllegalArgumentException.class,
        () -> new Settings(Duration.ofMillis(1), 0, Duration.ofSeconds(1), 1, OnTimeout.CANCEL));
  }
}
