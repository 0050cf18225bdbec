package dev.ferry.chaos.checker;

import dev.ferry.chaos.history.Event;
import dev.ferry.chaos.history.Event.Observation;
import dev.ferry.chaos.history.Event.Op;
import dev.ferry.chaos.history.Event.OpType;
import dev.ferry.chaos.history.History;
import dev.ferry.chaos.history.Observations;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Histories built by hand: times in milliseconds. */
final class Hist {
    static final long MS = 1_000_000L;
    private final List<Event> events = new ArrayList<>();

    /** One copy's counter sampled every 100 ms from {@code from} to {@code to}, counting up from 1. */
    Hist runs(String vm, String copy, long fromMs, long toMs) {
        long n = 1;
        for (long t = fromMs; t <= toMs; t += 100) {
            events.add(new Observation(t * MS, Observations.PROGRESS, vm, copy, Long.toString(n++)));
        }
        return this;
    }

    /** Samples of a copy that does not move (stopped), from to to. */
    Hist still(String vm, String copy, long fromMs, long toMs, long value) {
        for (long t = fromMs; t <= toMs; t += 100) {
            events.add(new Observation(t * MS, Observations.PROGRESS, vm, copy, Long.toString(value)));
        }
        return this;
    }

    Hist record(long ms, String vm, String value) {
        events.add(new Observation(ms * MS, Observations.RECORD, vm, "", value));
        return this;
    }

    Hist observe(long ms, String kind, String vm, String copy, String value) {
        events.add(new Observation(ms * MS, kind, vm, copy, value));
        return this;
    }

    Hist op(long invokeMs, long doneMs, String f, Map<String, String> args, OpType type, String result) {
        long id = events.size() + 1;
        events.add(new Op(invokeMs * MS, id, "client-1", OpType.INVOKE, f, args, ""));
        events.add(new Op(doneMs * MS, id, "client-1", type, f, args, result));
        return this;
    }

    Hist fault(long ms, String name, boolean start) {
        events.add(new Event.Fault(ms * MS, name, start, ""));
        return this;
    }

    Hist event(Event e) {
        events.add(e);
        return this;
    }

    History build() {
        List<Event> sorted = new ArrayList<>(events);
        sorted.sort((a, b) -> Long.compare(a.time(), b.time()));
        return History.of(sorted);
    }
}
