package dev.ferry.chaos.nemesis;

import dev.ferry.chaos.history.History;
import java.util.ArrayList;
import java.util.List;

/** Every nemesis of a run, healed together (last started first) before the final checks. */
public final class Faults implements AutoCloseable {
    private final History history;
    private final List<Nemesis> nemeses = new ArrayList<>();

    public Faults(History history) {
        this.history = history;
    }

    public History history() {
        return history;
    }

    public synchronized <N extends Nemesis> N add(N n) {
        nemeses.add(n);
        return n;
    }

    /** Heals every nemesis; a heal that fails is reported after the others ran. */
    public synchronized void healAll() {
        RuntimeException first = null;
        for (Nemesis n : nemeses.reversed()) {
            try {
                n.heal();
            } catch (RuntimeException e) {
                if (first == null) {
                    first = e;
                } else {
                    first.addSuppressed(e);
                }
            }
        }
        if (first != null) {
            throw first;
        }
    }

    @Override
    public void close() {
        healAll();
    }
}
