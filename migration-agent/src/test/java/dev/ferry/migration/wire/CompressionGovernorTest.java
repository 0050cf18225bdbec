package dev.ferry.migration.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class CompressionGovernorTest {
  private static int attemptsIn(CompressionGovernor g, int batches, boolean compressible) {
    int attempts = 0;
    for (int i = 0; i < batches; i++) {
      if (g.shouldTry()) {
        attempts++;
        g.record(1000, compressible ? 300 : 1000);
      }
    }
    return attempts;
  }

  @Test
  void compressibleMemoryIsAlwaysTried() {
    assertEquals(100, attemptsIn(new CompressionGovernor(), 100, true));
  }

  @Test
  void incompressibleMemoryBacksOffExponentially() {
    // Attempts at batches 0, 2, 5, 10, 19, 36, 69, then every 65th.
    int attempts = attemptsIn(new CompressionGovernor(), 1000, false);
    assertTrue(attempts <= 22, "attempts: " + attempts);
  }

  @Test
  void onePayingBatchResetsTheBackoff() {
    CompressionGovernor g = new CompressionGovernor();
    attemptsIn(g, 200, false);
    while (!g.shouldTry()) {
      // drain the current skip
    }
    g.record(1000, 100);
    assertTrue(g.shouldTry());
  }

  @Test
  void paysOnlyWhenAnEighthIsSaved() {
    assertTrue(CompressionGovernor.pays(800, 700));
    assertFalse(CompressionGovernor.pays(800, 701));
  }
}
