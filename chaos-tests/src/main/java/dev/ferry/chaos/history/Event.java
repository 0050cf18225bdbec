package dev.ferry.chaos.history;

import java.util.Map;

/**
 * One entry of a run's history, stamped on the runner's monotonic clock ({@link History#now()}):
 * every timestamp of a run, whoever's evidence it is, is on that one clock.
 */
public sealed interface Event permits Event.Op, Event.Fault, Event.Observation {
    /** Nanoseconds since the history began, on the runner's monotonic clock. */
    long time();

    /** How an operation ended, Jepsen's way: it happened, it did not, or nobody knows. */
    enum OpType {
        INVOKE,
        OK,
        FAIL,
        INFO
    }

    /**
     * A client's operation: an {@code INVOKE} and later one completion with the same id.
     *
     * @param process the client that ran it (a workload thread)
     * @param f what it does: migrate, cancel, create, stop, start, delete, drain, activate
     * @param args its arguments (vm, from, to, host, ...)
     * @param result what came back (the error, the outcome)
     */
    record Op(long time, long id, String process, OpType type, String f, Map<String, String> args, String result)
            implements Event {
        public Op {
            args = Map.copyOf(args);
        }

        public String arg(String key) {
            return args.getOrDefault(key, "");
        }
    }

    /** A fault the nemesis began ({@code start = true}) or healed. */
    record Fault(long time, String nemesis, boolean start, String detail) implements Event {}

    /**
     * Something seen from outside the agents at one instant: a copy's progress counter, a VM's
     * record in ZooKeeper, a stale-page report, a leftover found at the end.
     *
     * @param kind {@link Observations} names the kinds
     * @param vm the VM it is about ("" when none)
     * @param copy which copy of the VM: host and process, e.g. "host-1/4711" ("" when none)
     * @param value the counter or the text seen
     */
    record Observation(long time, String kind, String vm, String copy, String value) implements Event {
        public long longValue() {
            return Long.parseLong(value);
        }
    }
}
