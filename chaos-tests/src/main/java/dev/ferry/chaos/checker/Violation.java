package dev.ferry.chaos.checker;

/**
 * A broken invariant, with the evidence that shows it.
 *
 * @param invariant I1 .. I5
 * @param vm the VM it concerns ("" when none)
 * @param detail what was seen, with times on the run's monotonic clock
 */
public record Violation(String invariant, String vm, String detail) {
    @Override
    public String toString() {
        return invariant + " " + vm + ": " + detail;
    }
}
