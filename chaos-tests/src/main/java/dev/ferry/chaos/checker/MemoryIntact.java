package dev.ferry.chaos.checker;

import dev.ferry.chaos.history.Event.Observation;
import dev.ferry.chaos.history.History;
import dev.ferry.chaos.history.Observations;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * I3, a guest's memory is correct after every migration: the guests check their own memory (the
 * test guest before every rewrite of a page, the sim guest likewise) and say so on their console;
 * any {@link Observations#STALE} report is a violation, once per copy.
 */
public final class MemoryIntact implements Checker {
    @Override
    public String invariant() {
        return "I3";
    }

    @Override
    public List<Violation> check(History history) {
        List<Violation> out = new ArrayList<>();
        Set<String> seen = new LinkedHashSet<>();
        for (Observation o : history.observations(Observations.STALE)) {
            if (seen.add(o.vm() + " " + o.copy())) {
                out.add(new Violation(
                        invariant(),
                        o.vm(),
                        o.copy() + " reported stale memory at " + Checker.seconds(o.time()) + ": " + o.value()));
            }
        }
        return out;
    }
}
