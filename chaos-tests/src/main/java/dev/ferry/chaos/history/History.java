package dev.ferry.chaos.history;

import dev.ferry.chaos.history.Event.Fault;
import dev.ferry.chaos.history.Event.Observation;
import dev.ferry.chaos.history.Event.Op;
import dev.ferry.chaos.history.Event.OpType;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Predicate;

/**
 * A run's history: operations, faults and observations in the order they were recorded, every
 * one stamped by this one JVM's {@link System#nanoTime()} (CLOCK_MONOTONIC, the same clock for
 * every process on the machine, whatever wall clock a faked agent sees). Thread-safe.
 */
public final class History {
    private final long origin;
    private final List<Event> events = new ArrayList<>();
    private final AtomicLong ids = new AtomicLong();

    public History() {
        this(System.nanoTime());
    }

    History(long origin) {
        this.origin = origin;
    }

    /** A history built by hand (tests): events are taken as they are. */
    public static History of(List<Event> events) {
        History h = new History(0);
        h.events.addAll(events);
        return h;
    }

    /** Nanoseconds since this history began, on the machine's monotonic clock. */
    public long now() {
        return System.nanoTime() - origin;
    }

    public synchronized <E extends Event> E add(E e) {
        events.add(e);
        return e;
    }

    public Op invoke(String process, String f, Map<String, String> args) {
        return add(new Op(now(), ids.incrementAndGet(), process, OpType.INVOKE, f, args, ""));
    }

    public Op complete(Op invoke, OpType type, String result) {
        if (type == OpType.INVOKE) {
            throw new IllegalArgumentException("a completion is ok, fail or info");
        }
        return add(new Op(now(), invoke.id(), invoke.process(), type, invoke.f(), invoke.args(), result));
    }

    public Fault fault(String nemesis, boolean start, String detail) {
        return add(new Fault(now(), nemesis, start, detail));
    }

    public Observation observe(String kind, String vm, String copy, String value) {
        return add(new Observation(now(), kind, vm, copy, value));
    }

    public synchronized List<Event> events() {
        return List.copyOf(events);
    }

    public List<Observation> observations(String kind) {
        Predicate<Observation> p = o -> o.kind().equals(kind);
        List<Observation> out = new ArrayList<>();
        for (Event e : events()) {
            if (e instanceof Observation o && p.test(o)) {
                out.add(o);
            }
        }
        return out;
    }

    public List<Op> ops() {
        List<Op> out = new ArrayList<>();
        for (Event e : events()) {
            if (e instanceof Op o) {
                out.add(o);
            }
        }
        return out;
    }

    public List<Fault> faults() {
        List<Fault> out = new ArrayList<>();
        for (Event e : events()) {
            if (e instanceof Fault f) {
                out.add(f);
            }
        }
        return out;
    }

    /** Completions paired with their invocation, in completion order. */
    public List<Op[]> completedOps() {
        Map<Long, Op> invokes = new java.util.HashMap<>();
        List<Op[]> out = new ArrayList<>();
        for (Op o : ops()) {
            if (o.type() == OpType.INVOKE) {
                invokes.put(o.id(), o);
            } else if (invokes.containsKey(o.id())) {
                out.add(new Op[] {invokes.get(o.id()), o});
            }
        }
        return out;
    }

    /** One line per event, for the run's report (progress samples left out: there are thousands). */
    public List<String> lines() {
        List<String> out = new ArrayList<>();
        for (Event e : events()) {
            String t = String.format("%10.3f ", e.time() / 1e9);
            switch (e) {
                case Op o ->
                    out.add(t + o.process() + " " + o.type() + " " + o.f() + " " + o.args()
                            + (o.result().isEmpty() ? "" : " -> " + o.result()));
                case Fault f ->
                    out.add(t + "nemesis " + (f.start() ? "start " : "heal ") + f.nemesis() + " " + f.detail());
                case Observation o -> {
                    if (!o.kind().equals(Observations.PROGRESS) && !o.kind().equals(Observations.PROC_STATE)) {
                        out.add(t + "saw " + o.kind() + " " + o.vm() + " " + o.copy() + " " + o.value());
                    }
                }
            }
        }
        return out;
    }
}
