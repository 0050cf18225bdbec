package dev.ferry.cli.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GuestConsoleTest {
    private static final long S = 1_000_000_000L;

    @Test
    void countsHeartbeatsStaleLinesAndBootsAcrossPartialLines() {
        GuestConsole c = new GuestConsole(Path.of("/nonexistent"));
        c.accept(
                "FERRY-GUEST start mem=268304384 ws=33554432 ws_base=0x00204000 pages=8192 table=0x00200000 rate=2048 "
                        + "pattern=random hot=0 hotpct=0 hb=500 seed=1\nFERRY-GUEST hb=1 gen=20",
                0);
        assertEquals(-1, c.lastHeartbeat(), "a line counts once its newline arrived");
        c.accept("48 stale=0\n", S);
        assertEquals(1, c.lastHeartbeat());
        c.accept(
                "FERRY-GUEST STALE pfn=5341 expected=8168 found=9670 reason=generation\n"
                        + "FERRY-GUEST STALE pfn=844 expected=2319 found=9672 reason=generation\n"
                        + "FERRY-GUEST hb=9 gen=18432 stale=2\n",
                5 * S);
        assertEquals(1, c.starts());
        assertEquals(2, c.staleLines());
        assertEquals(2, c.maxStaleCounter());
        assertEquals(9, c.lastHeartbeat());
        assertEquals(
                "FERRY-GUEST STALE pfn=5341 expected=8168 found=9670 reason=generation",
                c.staleExamples().get(0));
        assertEquals(0, c.faults());
        c.accept("FERRY-GUEST FAULT vector=14\n", 6 * S);
        assertEquals(1, c.faults());
    }

    @Test
    void writeRateIsWallClockBetweenHeartbeatsSeen() {
        GuestConsole c = new GuestConsole(Path.of("/nonexistent"));
        c.accept("FERRY-GUEST hb=1 gen=1000 stale=0\n", 10 * S);
        c.accept("FERRY-GUEST hb=2 gen=3000 stale=0\n", 11 * S);
        // A saturated guest: one heartbeat after 3 s, with 200k writes.
        c.accept("FERRY-GUEST hb=3 gen=203000 stale=0\n", 14 * S);
        assertEquals(2000, c.writeRate(10 * S, 11 * S), 1e-9);
        assertEquals(202000 / 4.0, c.writeRate(0, 20 * S), 1e-9);
        assertTrue(Double.isNaN(c.writeRate(11 * S, 13 * S)), "one heartbeat says nothing about a rate");
        assertTrue(Double.isNaN(c.writeRate(10 * S, 10 * S + 1)));
        assertEquals(2, c.lastBeatAtOrBefore(12 * S).hb());
        assertEquals(3, c.firstBeatAfter(12 * S).hb());
        assertEquals(null, c.firstBeatAfter(14 * S));
        assertEquals(null, c.lastBeatAtOrBefore(S));
        assertEquals(200000 / 3.0, GuestConsole.rate(c.lastBeatAtOrBefore(12 * S), c.firstBeatAfter(12 * S)), 1e-9);
    }

    @Test
    void readsTheFileIncrementally(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("console.log");
        GuestConsole c = new GuestConsole(f);
        assertEquals(-1, c.poll().lastHeartbeat(), "no file yet");
        Files.writeString(f, "FERRY-GUEST hb=4 gen=8 stale=0\nFERRY-GUEST hb=5");
        assertEquals(4, c.poll().lastHeartbeat());
        Files.writeString(f, " gen=9 stale=0\n", java.nio.file.StandardOpenOption.APPEND);
        assertEquals(5, c.poll().lastHeartbeat());
        assertEquals(2, c.beats().size());
    }
}
