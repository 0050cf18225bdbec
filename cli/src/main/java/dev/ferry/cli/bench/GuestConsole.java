package dev.ferry.cli.bench;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What the Ferry test guest says on its serial console (hypervisor-hooks/src/main/native/README.md):
 * heartbeats {@code FERRY-GUEST hb=N gen=G stale=S}, one {@code STALE} line per page it found not
 * holding what it last wrote, {@code start} once per boot, {@code FAULT} when it crashed. The file
 * is read incrementally; {@link #accept} is the pure part.
 */
final class GuestConsole {
    private static final Pattern HEARTBEAT = Pattern.compile("FERRY-GUEST hb=(\\d+) gen=(\\d+) stale=(\\d+)");
    private static final int KEEP_STALE_LINES = 5;

    /** A heartbeat as read: when it was seen (System.nanoTime) and the guest's write counter. */
    record Beat(long seenNanos, long hb, long gen, long stale) {}

    private final Path file;
    private long offset;
    private final StringBuilder partial = new StringBuilder();
    private int starts;
    private int staleLines;
    private int faults;
    private final List<String> staleExamples = new ArrayList<>();
    private final List<Beat> beats = new ArrayList<>();
    private long maxStale;

    GuestConsole(Path file) {
        this.file = file;
    }

    /** Reads what the guest printed since the last call. */
    synchronized GuestConsole poll() {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
            long len = f.length();
            if (len > offset) {
                byte[] b = new byte[(int) Math.min(len - offset, 1 << 22)];
                f.seek(offset);
                f.readFully(b);
                offset += b.length;
                accept(new String(b, StandardCharsets.ISO_8859_1), System.nanoTime());
            }
        } catch (IOException e) {
            // not there yet, or gone with its VM: nothing new
        }
        return this;
    }

    /** Takes in console text; a line is counted once its newline has arrived. */
    synchronized void accept(String text, long nowNanos) {
        partial.append(text);
        int nl;
        while ((nl = partial.indexOf("\n")) >= 0) {
            String line = partial.substring(0, nl).strip();
            partial.delete(0, nl + 1);
            line(line, nowNanos);
        }
    }

    private void line(String line, long nowNanos) {
        if (line.startsWith("FERRY-GUEST STALE")) {
            staleLines++;
            if (staleExamples.size() < KEEP_STALE_LINES) {
                staleExamples.add(line);
            }
        } else if (line.startsWith("FERRY-GUEST start")) {
            starts++;
        } else if (line.startsWith("FERRY-GUEST FAULT")) {
            faults++;
        } else {
            Matcher m = HEARTBEAT.matcher(line);
            if (m.find()) {
                Beat b = new Beat(
                        nowNanos, Long.parseLong(m.group(1)), Long.parseLong(m.group(2)), Long.parseLong(m.group(3)));
                beats.add(b);
                maxStale = Math.max(maxStale, b.stale());
            }
        }
    }

    synchronized int starts() {
        return starts;
    }

    synchronized int staleLines() {
        return staleLines;
    }

    synchronized int faults() {
        return faults;
    }

    /** The highest {@code stale=} the guest reported (its own counter; it lives in guest RAM and travels). */
    synchronized long maxStaleCounter() {
        return maxStale;
    }

    synchronized List<String> staleExamples() {
        return List.copyOf(staleExamples);
    }

    synchronized List<Beat> beats() {
        return List.copyOf(beats);
    }

    /** The last heartbeat counter, or -1. */
    synchronized long lastHeartbeat() {
        return beats.isEmpty() ? -1 : beats.getLast().hb();
    }

    /**
     * The guest's page writes per second between two instants (System.nanoTime), from the first
     * and last heartbeat seen in between and when they were seen; NaN unless they are at least
     * a second apart. Wall-clock time, not heartbeat counts: a guest that cannot keep up with its
     * rate prints heartbeats late (each loop turn writes up to a second's worth of pages first).
     */
    synchronized double writeRate(long fromNanos, long toNanos) {
        Beat first = null;
        Beat last = null;
        for (Beat b : beats) {
            if (b.seenNanos() >= fromNanos && b.seenNanos() <= toNanos) {
                if (first == null) {
                    first = b;
                }
                last = b;
            }
        }
        return rate(first, last);
    }

    /** The last heartbeat seen at or before {@code nanos}, or null. */
    synchronized Beat lastBeatAtOrBefore(long nanos) {
        Beat found = null;
        for (Beat b : beats) {
            if (b.seenNanos() <= nanos) {
                found = b;
            }
        }
        return found;
    }

    /** The first heartbeat seen after {@code nanos}, or null. */
    synchronized Beat firstBeatAfter(long nanos) {
        for (Beat b : beats) {
            if (b.seenNanos() > nanos) {
                return b;
            }
        }
        return null;
    }

    /** Writes per second between two heartbeats seen at least a second apart (NaN otherwise). */
    static double rate(Beat first, Beat last) {
        if (first == null || last == null || last.seenNanos() - first.seenNanos() < 1_000_000_000L) {
            return Double.NaN;
        }
        return (last.gen() - first.gen()) / ((last.seenNanos() - first.seenNanos()) / 1e9);
    }
}
