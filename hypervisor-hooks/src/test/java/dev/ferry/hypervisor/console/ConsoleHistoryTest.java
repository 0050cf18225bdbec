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
    void trimmingBoundsWhatIsKeptAndAReaderBehindItStartsAtTheOldestByteKept() throws Exception {
        try (ConsoleHistory h = ConsoleHistory.open(dir, 4096)) {
            byte[] line = ("y".repeat(99) + "\n").getBytes(StandardCharsets.US_ASCII);
            for (int i = 0; i < 200; i++) {
                h.append(line);
            }
            assertEquals(20_000, h.end(), "offsets count every byte, trimmed or not");
            assertTrue(h.start() > 0, "the oldest bytes were trimmed");
            assertTrue(h.end() - h.start() <= 3 * 4096, h.start() + ".." + h.end());
            ConsoleHistory.Chunk c = h.read(0, 1 << 20);
            assertEquals(h.start(), c.offset(), "a reader behind the history starts at its oldest byte");
            assertEquals(h.end(), c.end());
            assertTrue(s(c).endsWith("y\n"), s(c));
            // The file keeps its length (a writer with O_APPEND, QEMU, loses nothing); the trimmed
            // part reads as zeros (its blocks are freed).
            assertEquals(20_000, Files.size(dir.resolve(ConsoleHistory.FILE)));
            assertEquals(0, Files.readAllBytes(dir.resolve(ConsoleHistory.FILE))[0]);
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
            // console.log stays what this host's guest printed (the chaos checkers' evidence).
            assertEquals("hb=3\n", Files.readString(dst.resolve(ConsoleHistory.FILE)));
            // The same tail again (a retried switchover) changes nothing.
            d.continueFrom(tail);
            assertEquals(s.end() + 5, d.end());
        }
    }

    @Test
    void whatTheDestinationsFileHeldBeforeTheTailIsNotPartOfTheHistory() throws Exception {
        try (ConsoleHistory s = ConsoleHistory.open(dir.resolve("s"));
                ConsoleHistory d = ConsoleHistory.open(dir.resolve("d"))) {
            s.append(b("old\n"));
            d.append(b("stale\n")); // an earlier stay of the VM on this host
            d.continueFrom(s.tail(100));
            assertEquals("old\n", s(d.read(0, 100)));
            d.append(b("new\n"));
            assertEquals("old\nnew\n", s(d.read(0, 100)));
            assertEquals(8, d.end());
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
        // The file is QEMU's too: a closed history no longer follows it.
        assertTrue(h.closed());
        h.append(b("ignored after close"));
        assertEquals(1, Files.size(dir.resolve(ConsoleHistory.FILE)));
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

    private static ConsoleHistory timed(ConsoleHistory h, java.util.concurrent.atomic.AtomicLong now) {
        h.clock(now::get);
        return h;
    }

    @Test
    void sinceStartsAtTheLineOfTheFirstOutputPrintedThatLate() throws Exception {
        var now = new java.util.concurrent.atomic.AtomicLong(1_000_000);
        try (ConsoleHistory h = timed(ConsoleHistory.open(dir), now)) {
            h.append(b("booting\n"));
            now.addAndGet(60_000);
            h.append(b("a minute later: half a line"));
            now.addAndGet(60_000);
            h.append(b(" and its end\nlast\n"));
            assertEquals(0, h.sinceOffset(1_000_000), "everything from the first line");
            assertEquals(8, h.sinceOffset(1_030_000), "from the line begun a minute later");
            assertEquals(8, h.sinceOffset(1_090_000), "the line finished later starts where it began");
            assertEquals(h.end(), h.sinceOffset(1_200_000), "nothing printed since");
        }
        // An agent restart reads the times back (its VM's history continues on this host).
        try (ConsoleHistory h = timed(ConsoleHistory.open(dir), now)) {
            assertEquals(8, h.sinceOffset(1_030_000));
            // (The last mark now reaches the file's modification time, by the real clock: what QEMU
            // may have printed meanwhile; bytesPrintedWhileNoAgentWatchedAreNeverLeftOut.)
        }
    }

    /** Without the times, --since after a migration showed the whole history (the source's part had no time). */
    @Test
    void theTimesComeAlongWithAContinuedHistory() throws Exception {
        var now = new java.util.concurrent.atomic.AtomicLong(5_000_000);
        Path source = dir.resolve("source");
        Path destination = dir.resolve("destination");
        ConsoleHistory.Chunk tail;
        java.util.List<ConsoleTimeIndex.Mark> times;
        try (ConsoleHistory h = timed(ConsoleHistory.open(source), now)) {
            h.append(b("early\n"));
            now.addAndGet(600_000);
            h.append(b("ten minutes on\n"));
            tail = h.tail(ConsoleHistory.MAX_TAIL_BYTES);
            times = h.timesFrom(tail.offset());
        }
        now.addAndGet(5_000);
        try (ConsoleHistory h = timed(ConsoleHistory.open(destination), now)) {
            h.continueFrom(tail, times);
            h.append(b("resumed here\n"));
            assertEquals(6, h.sinceOffset(5_300_000));
            assertEquals(21, h.sinceOffset(5_604_000));
            assertArrayEquals(
                    b("resumed here\n"), h.read(h.sinceOffset(5_604_000), 100).data());
        }
    }

    @Test
    void bytesPrintedWhileNoAgentWatchedAreNeverLeftOut() throws Exception {
        var now = new java.util.concurrent.atomic.AtomicLong(1_000);
        try (ConsoleHistory h = timed(ConsoleHistory.open(dir), now)) {
            h.append(b("seen\n"));
        }
        // QEMU writes the file itself: what it printed with no agent running has no mark of its own.
        Files.writeString(dir.resolve(ConsoleHistory.FILE), "unseen\n", java.nio.file.StandardOpenOption.APPEND);
        try (ConsoleHistory h = timed(ConsoleHistory.open(dir), now)) {
            long since = System.currentTimeMillis() - 60_000; // the file's mtime is the real clock's
            long at = h.sinceOffset(since);
            assertTrue(at <= 5, "the unseen line must be included: from " + at);
        }
    }

    @Test
    void theTimesStayBoundedAsTheHistoryIsTrimmed() throws Exception {
        var now = new java.util.concurrent.atomic.AtomicLong(0);
        try (ConsoleHistory h = timed(ConsoleHistory.open(dir, 4096), now)) {
            byte[] line = ("z".repeat(63) + "\n").getBytes(StandardCharsets.US_ASCII);
            for (int i = 0; i < 2000; i++) {
                now.addAndGet(2_000);
                h.append(line);
            }
            assertTrue(
                    h.timesFrom(0).size() < 200,
                    "marks beyond what is kept are dropped: " + h.timesFrom(0).size());
            long lastLine = h.end() - 64;
            assertEquals(lastLine, h.sinceOffset(now.get()));
            assertEquals(h.start(), h.sinceOffset(0));
        }
    }
}
