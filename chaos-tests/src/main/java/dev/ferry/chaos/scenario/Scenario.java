package dev.ferry.chaos.scenario;

import dev.ferry.chaos.schedule.Schedule;

/**
 * A named fault scenario: what it plans from a seed (its {@link Schedule}) and how it carries the
 * plan out on a cluster, with the workload and the nemeses of its {@link Run}. It does not check
 * anything itself beyond what it needs to go on (a VM must exist before it can be migrated): the
 * runner heals every fault and the checkers judge the history.
 */
public interface Scenario {
    /** "7-freeze-agent": the number in issue 9's list, then a name. */
    String id();

    /** One sentence: the fault and what it must not break. */
    String description();

    /** Whether its guests are QEMU (the test guest) or sim. */
    boolean qemu();

    /** Its choices for this seed, written down before anything runs. */
    Schedule plan(long seed);

    /** Carries the plan out; returns once its faults may be healed. */
    void run(Run run, Schedule plan) throws Exception;
}
