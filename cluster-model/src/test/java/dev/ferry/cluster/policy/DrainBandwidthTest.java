package dev.ferry.cluster.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class DrainBandwidthTest {
    @Test
    void theTotalIsSplitBetweenTheMigrationsThatRunAtOnce() {
        assertEquals(50L << 20, DrainBandwidth.share(100L << 20, 2, 5));
        assertEquals(25L << 20, DrainBandwidth.share(100L << 20, 4, 4));
    }

    @Test
    void fewerOpenMovesThanParallelShareByTheOpenOnes() {
        // Three of a 4-at-a-time drain left: each gets a third, not a quarter.
        assertEquals((99L << 20) / 3, DrainBandwidth.share(99L << 20, 4, 3));
        assertEquals(100L << 20, DrainBandwidth.share(100L << 20, 4, 1));
    }

    @Test
    void noCapStaysNoCapAndATinyCapNeverBecomesNone() {
        assertEquals(0, DrainBandwidth.share(0, 4, 4));
        assertEquals(1, DrainBandwidth.share(3, 4, 4));
    }

    @Test
    void nonsenseIsRefused() {
        assertThrows(IllegalArgumentException.class, () -> DrainBandwidth.share(-1, 1, 1));
        assertThrows(IllegalArgumentException.class, () -> DrainBandwidth.share(1, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> DrainBandwidth.share(1, 1, 0));
    }
}
