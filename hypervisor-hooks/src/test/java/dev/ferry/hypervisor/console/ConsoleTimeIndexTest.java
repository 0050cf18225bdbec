package dev.ferry.hypervisor.console;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class ConsoleTimeIndexTest {
    @Test
    void outputWithinASecondExtendsTheMarkAndLaterOutputStartsOne() {
        ConsoleTimeIndex t = new ConsoleTimeIndex();
        t.printed(0, 10, 1_000);
        t.printed(10, 20, 1_900);
        t.printed(20, 30, 2_000);
        assertEquals(
                List.of(new ConsoleTimeIndex.Mark(0, 1_000, 1_900), new ConsoleTimeIndex.Mark(20, 2_000, 2_000)),
                t.marks());
    }

    @Test
    void sinceIsInclusiveAndNothingWhenNothingWasPrintedThatLate() {
        ConsoleTimeIndex t = new ConsoleTimeIndex();
        t.printed(0, 10, 1_000);
        t.printed(10, 20, 5_000);
        assertEquals(0, t.offsetSince(500, 0, 20), "before the first mark: all of it");
        assertEquals(0, t.offsetSince(1_000, 0, 20));
        assertEquals(10, t.offsetSince(1_001, 0, 20));
        assertEquals(10, t.offsetSince(5_000, 0, 20));
        assertEquals(20, t.offsetSince(5_001, 0, 20));
        assertEquals(0, new ConsoleTimeIndex().offsetSince(5_000, 0, 20), "no marks: times unknown, all of it");
    }

    @Test
    void outputBeforeTheLastMarkIsRefused() {
        ConsoleTimeIndex t = new ConsoleTimeIndex();
        t.printed(10, 20, 1_000);
        assertThrows(IllegalArgumentException.class, () -> t.printed(5, 8, 3_000));
        assertThrows(IllegalArgumentException.class, () -> t.printed(30, 30, 3_000));
        assertThrows(
                IllegalArgumentException.class,
                () -> t.reset(List.of(new ConsoleTimeIndex.Mark(9, 1, 1), new ConsoleTimeIndex.Mark(9, 2, 2))));
    }

    @Test
    void trimmingForgetsOnlyMarksWhollyBeforeTheStart() {
        ConsoleTimeIndex t = new ConsoleTimeIndex();
        t.printed(0, 10, 1_000);
        t.printed(10, 20, 3_000);
        t.printed(20, 30, 5_000);
        t.trimBefore(15);
        assertEquals(10, t.marks().getFirst().offset(), "the mark holding the new start stays");
        assertEquals(List.of(new ConsoleTimeIndex.Mark(20, 5_000, 5_000)), t.from(25));
        assertEquals(2, t.from(0).size());
    }

    /**
     * The property --since rests on, through any amount of thinning: every byte printed at or
     * after the time asked for is at or after the offset returned.
     */
    @Test
    void thinningStaysBoundedAndNeverLeavesOutWhatWasPrintedThatLate() {
        Random r = new Random(13);
        for (int trial = 0; trial < 50; trial++) {
            ConsoleTimeIndex t = new ConsoleTimeIndex(8);
            List<long[]> printed = new ArrayList<>(); // {offset, time}
            long offset = 0;
            long now = 0;
            for (int i = 0; i < 200; i++) {
                now += r.nextInt(3_000);
                int n = 1 + r.nextInt(50);
                t.printed(offset, offset + n, now);
                for (int k = 0; k < n; k++) {
                    printed.add(new long[] {offset + k, now});
                }
                offset += n;
            }
            assertTrue(t.size() <= 8, "bounded: " + t.size());
            for (int q = 0; q < 100; q++) {
                long since = r.nextLong(now + 2);
                long from = t.offsetSince(since, 0, offset);
                for (long[] p : printed) {
                    if (p[1] >= since) {
                        assertTrue(
                                from <= p[0], "byte " + p[0] + " printed at " + p[1] + " left out by since " + since);
                        break; // bytes ascend with time: the first one late enough decides
                    }
                }
            }
        }
    }
}
