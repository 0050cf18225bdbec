package dev.ferry.hypervisor.console;

import java.util.ArrayList;
import java.util.List;

/**
 * When a console's bytes were printed, to about a second: what {@code ferry vm console --since}
 * looks up. Pure and not thread-safe (its {@link ConsoleHistory} guards it).
 *
 * <p>A {@link Mark} says: the bytes from its offset up to the next mark's were first seen between
 * {@code firstMillis} (less one poll) and {@code lastMillis}. Output seen within {@link
 * #RESOLUTION_MS} of a mark's first extends that mark instead of starting one, so a chatty console
 * makes at most one mark a second; a quiet one makes none. Past {@link #MAX_MARKS}, neighbours
 * are merged pairwise: the index stays bounded, and older history gets coarser, never wrong.
 *
 * <p>Every lookup errs towards more: {@link #offsetSince} never skips a byte printed at or after
 * the time asked for, and may include up to about a mark's span of what came just before.
 */
public final class ConsoleTimeIndex {
    /**
     * Bytes from {@code offset} on (to the next mark) first seen in [firstMillis - poll,
     * lastMillis], in milliseconds since the epoch by the clock of the host that saw them.
     */
    public record Mark(long offset, long firstMillis, long lastMillis) {
        public Mark {
            if (offset < 0 || lastMillis < firstMillis) {
                throw new IllegalArgumentException("bad mark " + offset + " " + firstMillis + ".." + lastMillis);
            }
        }
    }

    static final long RESOLUTION_MS = 1000;

    /** 4096 marks of 24 bytes: about 100 KiB per console at most, in memory and on disk. */
    static final int MAX_MARKS = 4096;

    private final int maxMarks;
    private final List<Mark> marks = new ArrayList<>();

    ConsoleTimeIndex() {
        this(MAX_MARKS);
    }

    ConsoleTimeIndex(int maxMarks) {
        if (maxMarks < 2) {
            throw new IllegalArgumentException("at least two marks: " + maxMarks);
        }
        this.maxMarks = maxMarks;
    }

    /**
     * Output [from, to) was seen at {@code now}. Returns the mark that now covers it: a new one, or
     * the last one extended (so a caller can tell whether to persist).
     */
    Mark printed(long from, long to, long now) {
        if (to <= from) {
            throw new IllegalArgumentException("nothing printed: " + from + ".." + to);
        }
        int n = marks.size();
        if (n > 0) {
            Mark last = marks.get(n - 1);
            if (from < last.offset()) {
                throw new IllegalArgumentException("output at " + from + " before the last mark at " + last.offset());
            }
            if (now - last.firstMillis() < RESOLUTION_MS && now >= last.lastMillis()) {
                Mark extended = new Mark(last.offset(), last.firstMillis(), now);
                marks.set(n - 1, extended);
                return extended;
            }
            // A clock that went back starts a new mark; lookups stay inclusive (they take the first
            // mark whose last time is late enough, wherever its neighbours are).
        }
        Mark m = new Mark(from, now, now);
        marks.add(m);
        if (marks.size() > maxMarks) {
            thin();
        }
        return m;
    }

    /** Merges neighbours pairwise: each merged mark spans both, from the first's offset and time to the second's last. */
    private void thin() {
        List<Mark> merged = new ArrayList<>((marks.size() + 1) / 2);
        for (int i = 0; i < marks.size(); i += 2) {
            Mark a = marks.get(i);
            if (i + 1 < marks.size()) {
                Mark b = marks.get(i + 1);
                merged.add(new Mark(
                        a.offset(),
                        Math.min(a.firstMillis(), b.firstMillis()),
                        Math.max(a.lastMillis(), b.lastMillis())));
            } else {
                merged.add(a);
            }
        }
        marks.clear();
        marks.addAll(merged);
    }

    /**
     * The offset from which everything printed at or after {@code millis} is included: the first
     * mark whose output may have been seen that late. {@code end} when nothing was; {@code start}
     * (everything kept) when bytes before the first mark are of unknown time and may be that late.
     */
    long offsetSince(long millis, long start, long end) {
        if (marks.isEmpty() || millis <= marks.get(0).firstMillis()) {
            return start; // what came before the first mark was printed before it: when, nobody noted
        }
        for (Mark m : marks) {
            if (m.lastMillis() >= millis) {
                return Math.max(start, Math.min(m.offset(), end));
            }
        }
        return end;
    }

    /** Forgets marks wholly before {@code start} (the history's oldest byte after a trim). */
    void trimBefore(long start) {
        int drop = 0;
        while (drop + 1 < marks.size() && marks.get(drop + 1).offset() <= start) {
            drop++;
        }
        if (drop > 0) {
            marks.subList(0, drop).clear();
        }
    }

    /** The marks that cover bytes from {@code from} on (what a migration carries with the history's tail). */
    List<Mark> from(long from) {
        int first = 0;
        while (first + 1 < marks.size() && marks.get(first + 1).offset() <= from) {
            first++;
        }
        return List.copyOf(marks.subList(Math.min(first, marks.size()), marks.size()));
    }

    /** Replaces every mark (a continued history, or one read back from disk); they must ascend by offset. */
    void reset(List<Mark> newMarks) {
        long prev = -1;
        for (Mark m : newMarks) {
            if (m.offset() <= prev) {
                throw new IllegalArgumentException("marks out of order at offset " + m.offset());
            }
            prev = m.offset();
        }
        marks.clear();
        marks.addAll(newMarks);
        while (marks.size() > maxMarks) {
            thin();
        }
    }

    List<Mark> marks() {
        return List.copyOf(marks);
    }

    int size() {
        return marks.size();
    }
}
