package dev.ferry.chaos.runner;

import dev.ferry.chaos.checker.Violation;
import java.util.List;

/**
 * One run of one scenario.
 *
 * @param scenario its id
 * @param seed the seed it planned from
 * @param faults how many faults the nemeses started
 * @param violations what the checkers found
 * @param recoveriesNanos per VM, from the heal until it ran again
 * @param error why the run could not be carried out or checked ("" when it was)
 * @param nanos how long it took
 */
public record RunResult(
        String scenario,
        long seed,
        int faults,
        List<Violation> violations,
        List<Long> recoveriesNanos,
        String error,
        long nanos) {
    public RunResult {
        violations = List.copyOf(violations);
        recoveriesNanos = List.copyOf(recoveriesNanos);
    }

    public boolean passed() {
        return violations.isEmpty() && error.isEmpty();
    }
}
