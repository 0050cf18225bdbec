package dev.ferry.hypervisor.console;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConsoleHistoryTest {
    @TempDir
    Path dir;

    private static byte[] b(String s) {
        return s.getBytes(StandardCharsets.US_ASCII);
    }

    private static String s(ConsoleHistory.Chunk c) {
        return new String(c.data(), StandardCharsets.US_ASCII);
    }

    @Test
    void offsetsCountEveryByteAndReadsResumeWhereTheyStopped() throws Exception {
        try (ConsoleHistory h = ConsoleHistory.open(dir)) {
            h.append(b("hello\n"));
            h.append(b("world\n"));
            assertEquals(0, h.start());
            assertEquals(12, h.end());
            assertEquals("world\n", s(h.read(6, 100)));
            assertEquals("wor", s(h.read(6, 3)));
            ConsoleHistory.Chunk atEnd = h.read(12, 100);
            assertEquals(12, atEnd.offset());
            assertEquals(0, atEnd.data().length);
        }
    }

    @Test
    void rotationBoundsTheHistoryAndAReaderBehindItStartsAtTheOldestByteKept() throws Exception {
        try (ConsoleHistory h = ConsoleHistory.open(dir, 10)) {
            for (int i = 0; i < 10; i++) {
                h.append(b("line" + i + "\n")); // 6 bytes each: 60 in all
            }
            assertEquals(60, h.end());
            // Two segments of at most 10 (+ the line that crossed) bytes each: what is kept is bounded.
            assertTrue(h.end() - h.start() <= 2 * (10 + 6), h.start() + ".." + h.end());
            ConsoleHistory.Chunk c = h.read(0, 1000);
            assertEquals(h.start(), c.offset(), "a reader behind the history starts at its oldest byte");
            assertTrue(s(c).endsWith("line9\n"), s(c));
            assertEquals(h.end(), c.end());
            long onDisk = Files.size(dir.resolve(ConsoleHistory.FILE)) + Files.size(dir.resolve("console.log.1"));
            assertEquals(h.end() - h.start(), onDisk);
        }
    }

    @Test
    void aReopenedHistoryKeepsItsGenerationAndOffsets() throws Exception {
        String gen;
        try (ConsoleHistory h = ConsoleHistory.open(dir, 8)) {
            h.append(b("0123456789"));
            h.append(b("abc"));
            gen = h.generation();
        }
        try (ConsoleHistory h = ConsoleHistory.open(dir, 8)) {
            assertEquals(gen, h.generation());
            assertEquals(13, h.end());
            h.append(b("d"));
            assertEquals("abcd", s(h.read(10, 100)));
        }
    }

    @Test
    void theDestinationContinuesTheSourcesHistoryUnderItsGenerationAndOffsets() throws Exception {
        Path src = dir.resolve("src");
        Path dst = dir.resolve("dst");
        try (ConsoleHistory s = ConsoleHistory.open(src);
                ConsoleHistory d = ConsoleHistory.open(dst)) {
            s.append(b("boot\nhb=1\nhb=2\n"));
            assertNotEquals(s.generation(), d.generation());
            ConsoleHistory.Chunk tail = s.tail(10); // bounded: the last 10 bytes
            assertEquals(s.end() - 10, tail.offset());
            d.continueFrom(tail);
            assertEquals(s.generation(), d.generation());
            assertEquals(s.end(), d.end());
            assertEquals(tail.offset(), d.start());
            d.append(b("hb=3\n"));
            assertEquals("hb=2\nhb=3\n", s(d.read(s.end() - 5, 100)));
            // The same tail again (a retried switchover) changes nothing.
            d.continueFrom(tail);
            assertEquals(s.end() + 5, d.end());
        }
    }

    @Test
    void bytesTheDestinationRecordedBeforeTheTailArrivedComeAfterIt() throws Exception {
        try (ConsoleHistory s = ConsoleHistory.open(dir.resolve("s"));
                ConsoleHistory d = ConsoleHistory.open(dir.resolve("d"))) {
            s.append(b("old\n"));
            d.append(b("new\n"));
            d.continueFrom(s.tail(100));
            assertEquals("old\nnew\n", s(d.read(0, 100)));
        }
    }

    @Test
    void followersAreWokenOnAppendAndOnClose() throws Exception {
        AtomicInteger wakes = new AtomicInteger();
        ConsoleHistory h = ConsoleHistory.open(dir);
        Runnable unsubscribe = h.subscribe(wakes::incrementAndGet);
        h.append(b("x"));
        assertEquals(1, wakes.get());
        h.close();
        assertEquals(2, wakes.get());
        assertTrue(h.closed());
        h.append(b("ignored after close"));
        assertEquals(1, h.end());
        unsubscribe.run();
    }

    @Test
    void lineStartCountsCompleteLinesAndKeepsThePartialRest() {
        assertEquals(2, ConsoleHistory.lineStart(b("a\nb\nc\n"), 2));
        assertEquals(0, ConsoleHistory.lineStart(b("a\nb\nc\n"), 3));
        assertEquals(0, ConsoleHistory.lineStart(b("a\nb\nc\n"), 10));
        assertEquals(6, ConsoleHistory.lineStart(b("a\nb\nc\n"), 0));
        assertEquals(2, ConsoleHistory.lineStart(b("a\nb\nc"), 1), "the partial line comes along");
        assertEquals(4, ConsoleHistory.lineStart(b("a\nb\nc"), 0));
        assertEquals(0, ConsoleHistory.lineStart(b(""), 5));
    }

    @Test
    void lineOffsetIsAbsolute() throws Exception {
        try (ConsoleHistory h = ConsoleHistory.open(dir, 8)) {
            h.append(b("one\ntwo\n"));
            h.append(b("three\n"));
            assertEquals(h.end() - 6, h.lineOffset(1));
            assertEquals(h.start(), h.lineOffset(-1));
            assertArrayEquals(b("three\n"), h.read(h.lineOffset(1), 100).data());
        }
    }
}
