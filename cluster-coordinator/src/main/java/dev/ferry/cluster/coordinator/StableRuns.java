package dev.ferry.cluster.coordinator;

import java.time.Duration;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * How long each VM has run without interruption at its current epoch, as this leader has watched
 * it (monotonic clock, one look per reconcile pass). A VM that does not run, or runs at another
 * epoch (a restart, a migration), starts again from zero; so does every VM when a new leader takes
 * over, which only delays a reset of its restart attempts (conservative).
 */
final class StableRuns {
    private record Run(long epoch, long sinceNanos) {}

    private final Clocks clocks;
    private final Map<String, Run> runs = new ConcurrentHashMap<>();

    StableRuns(Clocks clocks) {
        this.clocks = clocks;
    }

    /** Notes what a pass saw of {@code vm}; how long it has run at {@code epoch} so far (zero if it does not run). */
    Duration observe(String vm, long epoch, boolean running) {
        long now = clocks.nanoTime();
        if (!running) {
            runs.remove(vm);
            return Duration.ZERO;
        }
        Run r = runs.compute(vm, (k, old) -> old != null && old.epoch() == epoch ? old : new Run(epoch, now));
        return Duration.ofNanos(now - r.sinceNanos());
    }

    /** Forgets VMs that are gone. */
    void retain(Set<String> vms) {
        runs.keySet().retainAll(vms);
    }
}
