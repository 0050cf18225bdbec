package dev.ferry.chaos.checker;

import dev.ferry.chaos.history.History;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/** I1 to I5 together, with the bounds a run states. */
public final class Checkers {
    private Checkers() {}

    /**
     * @param recoveryBound I4's bound from the heal to every VM running again
     * @param finalWindow how long the runner samples after recovery (I4 counts copies in it)
     * @param sourceGrace how soon a failed migration's source must be seen progressing (I2)
     */
    public static List<Checker> all(Duration recoveryBound, Duration finalWindow, Duration sourceGrace) {
        return List.of(
                new NoTwoCopies(),
                new FailedMigrationKeepsSource(sourceGrace.toNanos()),
                new MemoryIntact(),
                new NothingLost(recoveryBound.toNanos(), finalWindow.toNanos()),
                new NothingLeaked());
    }

    public static List<Violation> check(List<Checker> checkers, History history) {
        List<Violation> out = new ArrayList<>();
        for (Checker c : checkers) {
            out.addAll(c.check(history));
        }
        return out;
    }
}
