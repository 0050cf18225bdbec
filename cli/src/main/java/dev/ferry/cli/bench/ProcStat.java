package dev.ferry.cli.bench;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.OptionalLong;

/**
 * CPU time of a process from {@code /proc/PID/stat}: user plus system time of all its threads,
 * living and exited (fields 14 and 15, utime and stime), in clock ticks of {@link #TICKS_PER_SECOND}.
 * Children's time (cutime, cstime) is not counted.
 */
final class ProcStat {
    /** USER_HZ: the unit of /proc times, 100 on every Linux architecture Ferry runs on. */
    static final int TICKS_PER_SECOND = 100;

    private ProcStat() {}

    /** utime + stime in ticks, or empty when the process is gone. */
    static OptionalLong cpuTicks(long pid) {
        try {
            return OptionalLong.of(parseCpuTicks(
                    Files.readString(Path.of("/proc", Long.toString(pid), "stat"), StandardCharsets.US_ASCII)));
        } catch (IOException | RuntimeException e) {
            return OptionalLong.empty();
        }
    }

    /**
     * utime + stime from one stat line. The command name (field 2) is in parentheses and may itself
     * contain spaces and parentheses, so fields are counted from the last ')'.
     */
    static long parseCpuTicks(String statLine) {
        int close = statLine.lastIndexOf(')');
        if (close < 0) {
            throw new IllegalArgumentException("not a /proc/PID/stat line: " + statLine);
        }
        String[] f = statLine.substring(close + 1).trim().split("\\s+");
        // f[0] is field 3 (state): field n is f[n - 3].
        if (f.length < 13) {
            throw new IllegalArgumentException("too few fields in /proc/PID/stat: " + statLine);
        }
        return Long.parseLong(f[11]) + Long.parseLong(f[12]);
    }

    /**
     * CPU ticks of the JIT compiler threads of a JVM ("C1 CompilerThre", "C2 CompilerThre") now,
     * by thread id; threads that already ended are not in it.
     */
    static java.util.Map<Long, Long> jitThreadTicks(long pid) {
        java.util.Map<Long, Long> out = new java.util.HashMap<>();
        try (var tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            for (Path t : tasks.toList()) {
                try {
                    String comm = Files.readString(t.resolve("comm"), StandardCharsets.US_ASCII)
                            .strip();
                    if (comm.startsWith("C1 Compiler") || comm.startsWith("C2 Compiler")) {
                        out.put(
                                Long.parseLong(t.getFileName().toString()),
                                parseCpuTicks(Files.readString(t.resolve("stat"), StandardCharsets.US_ASCII)));
                    }
                } catch (IOException | RuntimeException e) {
                    // the thread ended meanwhile
                }
            }
        } catch (IOException e) {
            // the process is gone
        }
        return out;
    }

    /** Ticks the JIT threads spent between two {@link #jitThreadTicks} readings (threads new in the second count from 0). */
    static long jitTicksBetween(java.util.Map<Long, Long> before, java.util.Map<Long, Long> after) {
        long sum = 0;
        for (var e : after.entrySet()) {
            sum += e.getValue() - before.getOrDefault(e.getKey(), 0L);
        }
        return sum;
    }

    static double seconds(long ticks) {
        return ticks / (double) TICKS_PER_SECOND;
    }
}
