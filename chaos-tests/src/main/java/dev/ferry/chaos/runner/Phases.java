package dev.ferry.chaos.runner;

import java.util.ArrayList;
import java.util.List;

/**
 * Where a run's time went, phase by phase (the scenario itself, the wait for recovery, the judged
 * window, the deletes, ...), printed with each run's result so that a slow chaos suite shows which
 * of its fixed costs to cut. Not thread-safe: the runner's thread marks it.
 */
final class Phases {
    private final List<String> done = new ArrayList<>();
    private long since = System.nanoTime();

    /** Ends the phase running since the last mark (or the start), naming it {@code name}. */
    void mark(String name) {
        long now = System.nanoTime();
        done.add(String.format("%s %.1f s", name, (now - since) / 1e9));
        since = now;
    }

    String describe() {
        return String.join(", ", done);
    }
}
