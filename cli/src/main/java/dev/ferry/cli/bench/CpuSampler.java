package dev.ferry.cli.bench;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.OptionalLong;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * CPU seconds that a few processes spend while a migration runs, sampled from /proc/PID/stat.
 * A process is counted from the moment it is tracked, or from its start ({@code fromStart}: a
 * destination QEMU launched during the migration). A process that exits keeps its last sample,
 * so at most one sampling period of its time is lost (a paused source QEMU's, in practice).
 * Processes that appear later are found by a finder, polled until it names one.
 */
final class CpuSampler implements AutoCloseable {
    private static final long PERIOD_MS = 20;
    private static final long DISCOVER_EVERY = 5;

    private final class Tracked {
        final Supplier<OptionalLong> finder;
        final boolean fromStart;
        long pid = -1;
        long base;
        long last;

        Tracked(Supplier<OptionalLong> finder, boolean fromStart) {
            this.finder = finder;
            this.fromStart = fromStart;
        }

        void sample(boolean discover) {
            if (pid < 0) {
                if (!discover) {
                    return;
                }
                OptionalLong p = finder.get();
                if (p.isEmpty()) {
                    return;
                }
                OptionalLong t = ProcStat.cpuTicks(p.getAsLong());
                if (t.isEmpty()) {
                    return;
                }
                pid = p.getAsLong();
                base = fromStart ? 0 : t.getAsLong();
                last = t.getAsLong();
                return;
            }
            OptionalLong t = ProcStat.cpuTicks(pid);
            // Only forward: a process that is exiting (a zombie whose threads are gone) can report less
            // than it had, which made a QEMU that died mid-run count negative seconds.
            if (t.isPresent()) {
                last = Math.max(last, t.getAsLong());
            }
        }
    }

    private final Map<String, Tracked> tracked = new LinkedHashMap<>();
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("cpu-sampler").factory());
    private long ticks;
    private boolean stopped;

    CpuSampler() {
        timer.scheduleAtFixedRate(this::sampleAll, PERIOD_MS, PERIOD_MS, TimeUnit.MILLISECONDS);
    }

    /** Counts {@code pid} from now on. */
    synchronized void track(String label, long pid) {
        Tracked t = new Tracked(() -> OptionalLong.of(pid), false);
        t.sample(true);
        tracked.put(label, t);
    }

    /** Counts the process {@code finder} names once it appears, from its start. */
    synchronized void trackWhenItAppears(String label, Supplier<OptionalLong> finder) {
        Tracked t = new Tracked(finder, true);
        t.sample(true);
        tracked.put(label, t);
    }

    private synchronized void sampleAll() {
        if (stopped) {
            return;
        }
        boolean discover = ticks++ % DISCOVER_EVERY == 0;
        for (Tracked t : tracked.values()) {
            t.sample(discover);
        }
    }

    /** Takes a last sample and returns CPU seconds per label (0 for a process never found). */
    synchronized Map<String, Double> stop() {
        for (Tracked t : tracked.values()) {
            t.sample(true);
        }
        stopped = true;
        timer.shutdownNow();
        Map<String, Double> out = new LinkedHashMap<>();
        tracked.forEach((label, t) -> out.put(label, t.pid < 0 ? 0.0 : ProcStat.seconds(t.last - t.base)));
        return out;
    }

    @Override
    public void close() {
        synchronized (this) {
            stopped = true;
        }
        timer.shutdownNow();
    }
}
