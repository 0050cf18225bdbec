package dev.ferry.chaos.checker;

import dev.ferry.chaos.checker.Progress.Copy;
import dev.ferry.chaos.history.Event;
import dev.ferry.chaos.history.Event.Observation;
import dev.ferry.chaos.history.History;
import dev.ferry.chaos.history.Observations;
import dev.ferry.chaos.history.RecordView;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * I4, nothing lost: after the faults heal, every VM whose final record says RUNNING runs exactly
 * once, on the host its record names, within {@code bound} of the heal (the runner states the
 * bound: session timeout + failover margin + boot); and a VM that changed owners did so at a
 * higher epoch. "Runs" is progress seen from outside in the last {@code window} of the history
 * (the runner keeps sampling that long after recovery), which ends at the runner's
 * {@link Observations#WINDOW_END} mark when there is one.
 */
public final class NothingLost implements Checker {
    private final long boundNanos;
    private final long windowNanos;

    public NothingLost(long boundNanos, long windowNanos) {
        this.boundNanos = boundNanos;
        this.windowNanos = windowNanos;
    }

    @Override
    public String invariant() {
        return "I4";
    }

    /** The last heal of any fault, or 0. */
    public static long healedAt(History history) {
        long t = 0;
        for (Event.Fault f : history.faults()) {
            if (!f.start()) {
                t = Math.max(t, f.time());
            }
        }
        return t;
    }

    /** Per VM that runs at the end: nanoseconds from the heal until its final copy progressed. */
    public static Map<String, Long> recoveries(History history) {
        long healed = healedAt(history);
        Map<String, Long> out = new LinkedHashMap<>();
        Progress.of(history).forEach((vm, copies) -> {
            Copy last = copies.getLast();
            for (Progress.Bracket b : last.brackets()) {
                if (b.hi() >= healed) {
                    out.put(vm, Math.max(0, b.hi() - healed));
                    break;
                }
            }
        });
        return out;
    }

    @Override
    public List<Violation> check(History history) {
        List<Violation> out = new ArrayList<>();
        List<Event> events = history.events();
        if (events.isEmpty()) {
            return out;
        }
        // The judged window ends at the runner's mark, before it deletes the run's VMs: judged at
        // the very end, every record would read "absent" and nothing would be checked.
        List<Observation> marks = history.observations(Observations.WINDOW_END);
        long end = marks.isEmpty() ? events.getLast().time() : marks.getLast().time();
        long healed = healedAt(history);
        Map<String, RecordView> first = new LinkedHashMap<>();
        Map<String, RecordView> last = new LinkedHashMap<>();
        for (Observation o : history.observations(Observations.RECORD)) {
            if (o.time() > end) {
                break;
            }
            RecordView r = RecordView.parse(o.value());
            if (r.present()) {
                first.putIfAbsent(o.vm(), r);
            }
            last.put(o.vm(), r);
        }
        Map<String, List<Copy>> progress = Progress.of(history);
        last.forEach((vm, fin) -> {
            if (!fin.desiredRunning()) {
                return;
            }
            List<Copy> running = new ArrayList<>();
            for (Copy c : progress.getOrDefault(vm, List.of())) {
                if (c.progressedWithin(end - windowNanos, end)) {
                    running.add(c);
                }
            }
            if (running.size() != 1) {
                out.add(new Violation(
                        invariant(),
                        vm,
                        "desired running, but " + running.size() + " copies progressed in the last "
                                + Checker.seconds(windowNanos) + " "
                                + running.stream().map(Copy::copy).toList()));
                return;
            }
            Copy c = running.getFirst();
            if (!c.host().equals(fin.owner())) {
                out.add(new Violation(invariant(), vm, "runs on " + c.copy() + " but its record names " + fin.owner()));
            }
            RecordView start = first.get(vm);
            if (start != null
                    && (fin.epoch() < start.epoch()
                            || (!fin.owner().equals(start.owner()) && fin.epoch() <= start.epoch()))) {
                out.add(new Violation(
                        invariant(),
                        vm,
                        "went from " + start.value() + " to " + fin.value() + " without a higher epoch"));
            }
            Long took = recoveries(history).get(vm);
            if (took != null && took > boundNanos) {
                out.add(new Violation(
                        invariant(),
                        vm,
                        "ran again " + Checker.seconds(took) + " after the heal at " + Checker.seconds(healed)
                                + ", past the bound of " + Checker.seconds(boundNanos)));
            }
        });
        return out;
    }
}
