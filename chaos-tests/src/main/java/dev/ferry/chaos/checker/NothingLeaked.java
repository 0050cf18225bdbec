package dev.ferry.chaos.checker;

import dev.ferry.chaos.history.Event.Observation;
import dev.ferry.chaos.history.History;
import dev.ferry.chaos.history.Observations;
import dev.ferry.chaos.history.RecordView;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * I5, nothing leaked: what exists at the end (QEMU processes found in /proc, RAM files in the
 * hosts' RAM directories, run directories in their data directories, run locks in ZooKeeper)
 * belongs to a VM whose final record names that host, once. A QEMU process or a run lock is
 * allowed only for a VM desired running; a RAM file and a run directory for any VM still defined
 * there (a stopped VM stays defined on its owner). Anything not attributable to a VM is a leak.
 */
public final class NothingLeaked implements Checker {
    @Override
    public String invariant() {
        return "I5";
    }

    @Override
    public List<Violation> check(History history) {
        // Each leftover is judged by the records read last before it was seen (a run looks twice:
        // before and after it deletes its VMs).
        Map<String, RecordView> records = new HashMap<>();
        List<Violation> out = new ArrayList<>();
        Map<String, Integer> count = new HashMap<>();
        List<String> kinds = List.of(
                Observations.FINAL_QEMU,
                Observations.FINAL_RAM_FILE,
                Observations.FINAL_RUN_DIR,
                Observations.FINAL_RUN_LOCK);
        for (dev.ferry.chaos.history.Event e : history.events()) {
            if (!(e instanceof Observation o)) {
                continue;
            }
            if (o.kind().equals(Observations.RECORD)) {
                records.put(o.vm(), RecordView.parse(o.value()));
                count.clear();
                continue;
            }
            String kind = o.kind();
            if (!kinds.contains(kind)) {
                continue;
            }
            boolean needsRunning = kind.equals(Observations.FINAL_QEMU) || kind.equals(Observations.FINAL_RUN_LOCK);
            {
                RecordView r = records.getOrDefault(o.vm(), RecordView.ABSENT);
                String what = kind.substring("final-".length()) + " " + o.value() + " on " + o.copy();
                if (o.vm().isEmpty()) {
                    out.add(new Violation(invariant(), "", what + " belongs to no VM"));
                } else if (!r.present()) {
                    out.add(new Violation(invariant(), o.vm(), what + ": the VM has no record"));
                } else if (!r.owner().equals(o.copy())) {
                    out.add(new Violation(invariant(), o.vm(), what + ": the VM is " + r.owner() + "'s"));
                } else if (needsRunning && !r.desiredRunning()) {
                    out.add(new Violation(invariant(), o.vm(), what + ": the VM is " + r.desired()));
                } else if (count.merge(kind + " " + o.vm(), 1, Integer::sum) > 1) {
                    out.add(new Violation(invariant(), o.vm(), what + ": more than one"));
                }
            }
        }
        return out;
    }
}
