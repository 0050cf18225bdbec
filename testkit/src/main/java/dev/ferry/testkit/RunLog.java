package dev.ferry.testkit;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The checker's evidence: every moment a VM's guest starts or stops executing on some host, with
 * {@link System#nanoTime()} (CLOCK_MONOTONIC on Linux, one clock for every process on this
 * machine), appended to one file by every agent process and by the test itself. "Begins" are
 * written before the guest is started or resumed, "ends" after it is paused, stopped or killed,
 * so an interval covers at least the time the guest really ran; two intervals of one VM on two
 * hosts that overlap are a double run.
 */
public final class RunLog {
    public enum Event {
        BEGIN,
        END
    }

    /** One interval a VM ran on a host. */
    public record Interval(String vm, String host, long begin, long end) {
        boolean overlaps(Interval o) {
            return begin < o.end && o.begin < end;
        }
    }

    private final Path file;

    public RunLog(Path file) {
        this.file = file;
    }

    public Path file() {
        return file;
    }

    public void record(String host, String vm, Event event) {
        String line = System.nanoTime() + " " + host + " " + vm + " " + event + "\n";
        // One write with O_APPEND: lines from several processes never interleave.
        try (FileChannel ch = FileChannel.open(
                file, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND)) {
            ch.write(ByteBuffer.wrap(line.getBytes(StandardCharsets.UTF_8)));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Every interval so far; a VM still running is open until now. */
    public List<Interval> intervals() throws IOException {
        long now = System.nanoTime();
        List<Interval> out = new ArrayList<>();
        Map<String, Long> open = new HashMap<>();
        if (!Files.exists(file)) {
            return out;
        }
        List<String[]> lines = new ArrayList<>();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (!line.isBlank()) {
                lines.add(line.split(" "));
            }
        }
        lines.sort((a, b) -> Long.compare(Long.parseLong(a[0]), Long.parseLong(b[0])));
        for (String[] p : lines) {
            long t = Long.parseLong(p[0]);
            String key = p[1] + " " + p[2];
            if (p[3].equals("BEGIN")) {
                open.putIfAbsent(key, t);
            } else {
                Long b = open.remove(key);
                if (b != null) {
                    out.add(new Interval(p[2], p[1], b, t));
                }
            }
        }
        for (var e : open.entrySet()) {
            String[] k = e.getKey().split(" ");
            out.add(new Interval(k[1], k[0], e.getValue(), now));
        }
        return out;
    }

    /** Pairs of intervals of one VM on two hosts that overlap: each is a double run. */
    public List<String> doubleRuns() throws IOException {
        List<Interval> all = intervals();
        List<String> bad = new ArrayList<>();
        for (int i = 0; i < all.size(); i++) {
            for (int j = i + 1; j < all.size(); j++) {
                Interval a = all.get(i);
                Interval b = all.get(j);
                if (a.vm().equals(b.vm()) && !a.host().equals(b.host()) && a.overlaps(b)) {
                    bad.add(a.vm() + " ran on " + a.host() + " [" + a.begin() + ", " + a.end() + "] and on " + b.host()
                            + " [" + b.begin() + ", " + b.end() + "]");
                }
            }
        }
        return bad;
    }

    /** Hosts {@code vm} is running on now (open intervals). */
    public List<String> runningOn(String vm) throws IOException {
        long now = System.nanoTime();
        List<String> out = new ArrayList<>();
        for (Interval i : intervals()) {
            if (i.vm().equals(vm) && i.end() >= now) {
                out.add(i.host());
            }
        }
        return out;
    }
}
