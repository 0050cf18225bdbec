package dev.ferry.cluster.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.ferry.proto.agent.ConsoleOpen;
import dev.ferry.proto.agent.ConsoleOutput;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class ConsoleCursorTest {
    private static ConsoleOutput data(String gen, long offset, String text) {
        return ConsoleOutput.newBuilder()
                .setGeneration(gen)
                .setOffset(offset)
                .setData(ByteString.copyFrom(text, StandardCharsets.US_ASCII))
                .build();
    }

    private static ConsoleOutput attached(String host, long epoch) {
        return ConsoleOutput.newBuilder().setHost(host).setEpoch(epoch).build();
    }

    private static String text(ConsoleCursor.Step s) {
        return new String(s.data(), StandardCharsets.US_ASCII);
    }

    @Test
    void theFirstOpenAsksForTheTailAndAReattachForWhereItStopped() {
        ConsoleCursor c = new ConsoleCursor();
        ConsoleOpen first = c.open("web", 20, true, false);
        assertEquals("", first.getGeneration());
        assertEquals(20, first.getTailLines());
        assertTrue(first.getWrite());
        c.accept(attached("host-1", 2));
        c.accept(data("g1", 100, "hb=1\n"));
        ConsoleOpen again = c.open("web", 20, true, false);
        assertEquals("g1", again.getGeneration());
        assertEquals(105, again.getOffset());
    }

    @Test
    void aMoveIsNotedOnceAndWhatWasPrintedBeforeIsNotPrintedAgain() {
        ConsoleCursor c = new ConsoleCursor();
        assertEquals(List.of(), c.accept(attached("host-1", 2)).notes(), "the first host is no news");
        assertEquals("hb=1\nhb=2\n", text(c.accept(data("g1", 0, "hb=1\nhb=2\n"))));
        ConsoleCursor.Step moved = c.accept(attached("host-2", 3));
        assertEquals(List.of("-- now on host-2 (epoch 3)"), moved.notes());
        // The destination sends from a little earlier (say its reattach asked for less): the overlap is cut.
        ConsoleCursor.Step s = c.accept(data("g1", 5, "hb=2\nhb=3\n"));
        assertEquals("hb=3\n", text(s));
        assertEquals(List.of(), s.notes());
        assertEquals(15, c.offset());
        assertTrue(c.accept(attached("host-2", 3)).notes().isEmpty(), "the same host again: no note");
    }

    @Test
    void bytesTrimmedBeforeTheyWereReadAreReportedAsMissed() {
        ConsoleCursor c = new ConsoleCursor();
        c.accept(data("g1", 0, "abc"));
        ConsoleCursor.Step s = c.accept(data("g1", 10, "xyz"));
        assertEquals("xyz", text(s));
        assertEquals(1, s.notes().size());
        assertTrue(s.notes().getFirst().contains("7 bytes"), s.notes().toString());
        ConsoleCursor.Step skipped =
                c.accept(data("g1", 13, "").toBuilder().setSkipped(4).build());
        assertTrue(
                skipped.notes().getFirst().contains("4 bytes"), skipped.notes().toString());
    }

    @Test
    void aRestartElsewhereStartsANewGenerationPrintedWholeAfterANote() {
        ConsoleCursor c = new ConsoleCursor();
        c.accept(data("g1", 0, "old\n"));
        ConsoleCursor.Step s = c.accept(data("g2", 0, "boot\n"));
        assertEquals("boot\n", text(s));
        assertEquals(1, s.notes().size());
        assertTrue(s.notes().getFirst().contains("started afresh"), s.notes().toString());
        assertEquals("g2", c.generation());
    }

    @Test
    void theEndAndTheCatchUpArePassedOn() {
        ConsoleCursor c = new ConsoleCursor();
        ConsoleCursor.Step s =
                c.accept(data("g1", 0, "x").toBuilder().setCaughtUp(true).build());
        assertTrue(s.caughtUp());
        assertNull(s.ended());
        ConsoleCursor.Step e =
                c.accept(ConsoleOutput.newBuilder().setEnded("history").build());
        assertEquals("history", e.ended());
        assertFalse(e.caughtUp());
        assertEquals(1, c.offset(), "an end message moves nothing");
    }
}
