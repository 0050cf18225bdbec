package dev.ferry.chaos.nemesis;

/**
 * A source of faults, Jepsen's nemesis: each fault it starts is written to the run's history, and
 * {@link #heal()} undoes everything it still has in effect (idempotent, never throws for a fault
 * already gone), so that the runner can heal every nemesis before the final checks.
 */
public interface Nemesis {
    String name();

    void heal();
}
