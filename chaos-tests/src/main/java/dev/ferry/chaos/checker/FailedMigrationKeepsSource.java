package dev.ferry.chaos.checker;

import dev.ferry.chaos.checker.Progress.Copy;
import dev.ferry.chaos.history.Event;
import dev.ferry.chaos.history.Event.Observation;
import dev.ferry.chaos.history.Event.Op;
import dev.ferry.chaos.history.Event.OpType;
import dev.ferry.chaos.history.History;
import dev.ferry.chaos.history.Observations;
import dev.ferry.chaos.history.RecordView;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * I2, a failed or cancelled migration leaves the source running and ownership unchanged. For
 * every {@code migrate} that completed {@code FAIL} (cancelled included; an {@code INFO}, whose
 * outcome nobody knows, proves nothing either way): the VM's record read from ZooKeeper after the
 * completion names the same owner at the same epoch as the last one read before the invocation;
 * and, when the VM was running there, its copy on that owner is seen progressing after the
 * completion, unless a fault began in between (a fault may stop it legitimately) or the history
 * ends sooner than {@code grace} after it.
 *
 * <p>A migration whose source host itself failed while it ran (its agent killed or frozen, or the
 * host cut off from ZooKeeper) is not judged here: the failure is the cluster's to repair by
 * restarting the VM elsewhere, and that restart is judged by I1 and I4. A fault anywhere else
 * (the destination, the link between them, one ZooKeeper server) excuses no ownership change.
 */
public final class FailedMigrationKeepsSource implements Checker {
    private final long graceNanos;

    public FailedMigrationKeepsSource(long graceNanos) {
        this.graceNanos = graceNanos;
    }

    @Override
    public String invariant() {
        return "I2";
    }

    @Override
    public List<Violation> check(History history) {
        List<Violation> out = new ArrayList<>();
        List<Event> events = history.events();
        long end = events.isEmpty() ? 0 : events.getLast().time();
        Map<String, List<Copy>> progress = Progress.of(history);
        for (Op[] pair : history.completedOps()) {
            Op invoke = pair[0];
            Op done = pair[1];
            if (!invoke.f().equals("migrate") || done.type() != OpType.FAIL) {
                continue;
            }
            String vm = invoke.arg("vm");
            RecordView before = null;
            RecordView after = null;
            long afterTime = 0;
            long faultAfter = Long.MAX_VALUE;
            for (Event e : events) {
                if (e instanceof Observation o && o.kind().equals(Observations.RECORD) && o.vm().equals(vm)) {
                    if (o.time() <= invoke.time()) {
                        before = RecordView.parse(o.value());
                    } else if (o.time() >= done.time() && after == null) {
                        after = RecordView.parse(o.value());
                        afterTime = o.time();
                    }
                }
                if (e instanceof Event.Fault f
                        && f.start()
                        && f.time() >= done.time()
                        && faultAfter == Long.MAX_VALUE) {
                    faultAfter = f.time();
                }
            }
            if (before == null || after == null) {
                out.add(new Violation(
                        invariant(),
                        vm,
                        "migration " + invoke.id() + " failed but its record was not read "
                                + (before == null ? "before" : "after") + " it (the run cannot show I2)"));
                continue;
            }
            if (sourceFailed(events, before.owner(), invoke.time(), afterTime)) {
                continue;
            }
            if (!after.owner().equals(before.owner()) || after.epoch() != before.epoch()) {
                out.add(new Violation(
                        invariant(),
                        vm,
                        "migration " + invoke.id() + " failed (" + done.result() + ") yet the record went from "
                                + before.value() + " to " + after.value() + " (read at "
                                + Checker.seconds(afterTime) + ")"));
                continue;
            }
            if (!before.desiredRunning()) {
                continue;
            }
            long from = done.time();
            long to = Math.min(faultAfter, from + graceNanos);
            if (to < from + graceNanos || end < from + graceNanos) {
                continue;
            }
            String owner = before.owner();
            boolean ran = progress.getOrDefault(vm, List.of()).stream()
                    .anyMatch(c -> c.host().equals(owner) && c.progressedWithin(from, to));
            if (!ran) {
                out.add(new Violation(
                        invariant(),
                        vm,
                        "migration " + invoke.id() + " failed (" + done.result() + ") and the source " + owner
                                + " showed no progress within " + Checker.seconds(graceNanos) + " after "
                                + Checker.seconds(from)));
            }
        }
        return out;
    }

    /**
     * Whether a fault that takes {@code host} out of the cluster began in [from, to]: a kill or a
     * freeze of it (the nemesis names its target first), or a partition with it on one side and a
     * ZooKeeper server on the other.
     */
    static boolean sourceFailed(List<Event> events, String host, long from, long to) {
        for (Event e : events) {
            if (!(e instanceof Event.Fault f) || !f.start() || f.time() < from || f.time() > to) {
                continue;
            }
            String d = f.detail();
            boolean process = (f.nemesis().equals("kill") || f.nemesis().equals("freeze")) && d.startsWith(host + " ");
            boolean cutOff = f.nemesis().equals("partition")
                    && java.util.regex.Pattern.compile("\\b" + java.util.regex.Pattern.quote(host) + "\\b")
                            .matcher(d)
                            .find()
                    && d.contains("zk-");
            if (process || cutOff) {
                return true;
            }
        }
        return false;
    }
}
