package dev.ferry.chaos.checker;

import dev.ferry.chaos.checker.Progress.Copy;
import dev.ferry.chaos.history.History;
import java.util.ArrayList;
import java.util.List;

/**
 * I1, never two executing copies of a VM. Two copies X and Y of one VM overlap when each of them
 * certainly executed after the other had begun: X progressed at an instant later than Y's first
 * progress, and Y at an instant later than X's first. Their spans of execution then share a
 * stretch of time (both ran, or they took turns: either is a second copy executing). An orderly
 * handover (a live migration's switchover, a fenced copy replaced by a restart) never shows it:
 * the old copy's last progress precedes the new copy's first. Only certain instants count (the
 * brackets of {@link Progress}), so sampling never makes up a violation; it can hide one shorter
 * than the sampling period.
 */
public final class NoTwoCopies implements Checker {
    @Override
    public String invariant() {
        return "I1";
    }

    @Override
    public List<Violation> check(History history) {
        List<Violation> out = new ArrayList<>();
        Progress.of(history).forEach((vm, copies) -> {
            for (int i = 0; i < copies.size(); i++) {
                for (int j = i + 1; j < copies.size(); j++) {
                    Copy x = copies.get(i);
                    Copy y = copies.get(j);
                    if (x.progressedAfter(y.first().hi())
                            && y.progressedAfter(x.first().hi())) {
                        out.add(new Violation(
                                invariant(),
                                vm,
                                "two copies executed: " + x.copy() + " progressed until after "
                                        + Checker.seconds(x.last().lo()) + ", " + y.copy()
                                        + " had progressed by "
                                        + Checker.seconds(y.first().hi())));
                    }
                }
            }
        });
        return out;
    }
}
