package dev.ferry.chaos.checker;

import dev.ferry.chaos.history.Event.Observation;
import dev.ferry.chaos.history.History;
import dev.ferry.chaos.history.Observations;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * When each copy of each VM made progress, from the {@link Observations#PROGRESS} samples: a copy
 * progressed within (previous sample, this sample] whenever its counter changed to a value &gt;= 0
 * between two of its samples. A copy's first sample is only a baseline: what it shows may have been
 * printed before the sampler knew the copy (a console file left by an earlier copy on that host). These brackets are all the checkers know: a copy certainly executed
 * at some instant inside each one, and nothing is assumed about when inside.
 */
public final class Progress {
    /** A copy executed at some instant in (lo, hi]. */
    public record Bracket(long lo, long hi) {}

    /** Every bracket of one copy, in time order. */
    public record Copy(String vm, String copy, List<Bracket> brackets) {
        public Bracket first() {
            return brackets.getFirst();
        }

        public Bracket last() {
            return brackets.getLast();
        }

        public String host() {
            int slash = copy.indexOf('/');
            return slash < 0 ? copy : copy.substring(0, slash);
        }

        /** Whether it certainly executed after {@code t} (an instant inside one of its brackets is later). */
        public boolean progressedAfter(long t) {
            return last().lo() >= t;
        }

        /** Whether it certainly executed inside [from, to]. */
        public boolean progressedWithin(long from, long to) {
            for (Bracket b : brackets) {
                if (b.lo() >= from && b.hi() <= to) {
                    return true;
                }
            }
            return false;
        }
    }

    private Progress() {}

    /** vm -> copies that made progress at least once, in the order they first did. */
    public static Map<String, List<Copy>> of(History history) {
        Map<String, Map<String, List<Bracket>>> byVm = new LinkedHashMap<>();
        Map<String, Observation> previous = new LinkedHashMap<>();
        for (Observation o : history.observations(Observations.PROGRESS)) {
            String key = o.vm() + "\u0000" + o.copy();
            Observation prev = previous.put(key, o);
            long value = o.longValue();
            if (value < 0) {
                continue;
            }
            if (prev != null && prev.longValue() != value) {
                long lo = prev.time();
                byVm.computeIfAbsent(o.vm(), k -> new LinkedHashMap<>())
                        .computeIfAbsent(o.copy(), k -> new ArrayList<>())
                        .add(new Bracket(lo, o.time()));
            }
        }
        Map<String, List<Copy>> out = new LinkedHashMap<>();
        byVm.forEach((vm, copies) -> {
            List<Copy> list = new ArrayList<>();
            copies.forEach((copy, brackets) -> list.add(new Copy(vm, copy, List.copyOf(brackets))));
            list.sort((a, b) -> Long.compare(a.first().hi(), b.first().hi()));
            out.put(vm, list);
        });
        return out;
    }
}
