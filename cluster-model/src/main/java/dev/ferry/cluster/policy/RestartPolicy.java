package dev.ferry.cluster.policy;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The VMs of a failed host: in what order they restart, where, and whether they still may.
 *
 * <p>Higher restart priority first; within a priority, bigger VMs first (they are the hardest to
 * fit, so they go while there is room), then by name. Each placement uses up capacity before the
 * next is decided, so when capacity is short it is the low-priority VMs that wait. The same order
 * says which restarts go first when only a few may be in flight at once ({@link #admit}): after an
 * outage that took many hosts, the restarts go out a few at a time instead of all at once.
 *
 * <p>Times here are monotonic (System.nanoTime), never wall-clock: a clock step on the leader
 * (NTP, an operator) must neither bring a restart forward nor hold it back.
 */
public final class RestartPolicy {
    private RestartPolicy() {}

    /** The cluster's default of {@code max_restart_attempts} when a VM's spec leaves it 0. */
    public static final int DEFAULT_MAX_ATTEMPTS = 3;

    /**
     * Restarts in flight at once, unless configured: enough to restart a failed host's VMs
     * promptly, few enough that an outage of many hosts does not boot every guest in the same
     * second on the survivors (and their storage).
     */
    public static final int DEFAULT_MAX_CONCURRENT = 4;

    /**
     * How long a VM must run at one epoch, without a restart, before its restart attempts count
     * from zero again, unless configured: long enough that a VM that crashes shortly after every
     * restart still runs out of attempts, short enough that unrelated failures weeks apart do not
     * add up.
     */
    public static final Duration DEFAULT_ATTEMPTS_RESET_AFTER = Duration.ofMinutes(10);

    /**
     * A VM to restart; it goes only to a host whose hypervisor runs its {@code machine} and {@code
     * cpuModel} (as {@link Placement} checks), and waits with the reason while there is none.
     */
    public record Candidate(
            String vm, int priority, long memoryBytes, int vcpus, String group, String machine, String cpuModel) {
        public Candidate(String vm, int priority, long memoryBytes, int vcpus, String group) {
            this(vm, priority, memoryBytes, vcpus, group, "", "");
        }

        Placement.Demand demand() {
            return new Placement.Demand(vm, memoryBytes, vcpus, group, machine, cpuModel);
        }
    }

    /** Where each VM goes ({@code placed}, in restart order), and why the others wait. */
    public record Plan(Map<String, String> placed, Map<String, String> waiting) {}

    public static List<Candidate> order(Collection<Candidate> vms) {
        return vms.stream()
                .sorted(Comparator.comparingInt((Candidate c) -> -c.priority())
                        .thenComparingLong(c -> -c.memoryBytes())
                        .thenComparing(Candidate::vm))
                .toList();
    }

    public static Plan plan(Collection<Candidate> vms, Collection<Placement.Host> hosts, Set<String> exclude) {
        Map<String, Placement.Host> view = new LinkedHashMap<>();
        for (Placement.Host h : hosts) {
            view.put(h.id(), h);
        }
        Map<String, String> placed = new LinkedHashMap<>();
        Map<String, String> waiting = new LinkedHashMap<>();
        for (Candidate c : order(vms)) {
            switch (Placement.place(c.demand(), new ArrayList<>(view.values()), exclude)) {
                case Placement.Placed p -> {
                    placed.put(c.vm(), p.host());
                    view.put(p.host(), view.get(p.host()).with(c.demand()));
                }
                case Placement.NoHost n -> waiting.put(c.vm(), n.reason());
            }
        }
        return new Plan(placed, waiting);
    }

    /**
     * Of the restarts {@code waiting} for a slot, the ones that may start now, in restart order:
     * as many as {@code limit} leaves beside the {@code inFlight} ones (none when the limit is
     * reached).
     */
    public static List<Candidate> admit(Collection<Candidate> waiting, int inFlight, int limit) {
        if (limit < 1) {
            throw new IllegalArgumentException("the limit of restarts in flight must be at least 1, got " + limit);
        }
        int free = Math.max(0, limit - inFlight);
        List<Candidate> ordered = order(waiting);
        return ordered.subList(0, Math.min(free, ordered.size()));
    }

    /**
     * Has the failover margin passed since a host was seen to go at {@code lostAtNanos}? Both
     * times are {@link System#nanoTime()} readings of one process (compared by their difference,
     * as nanoTime must be).
     */
    public static boolean marginPassed(long lostAtNanos, long nowNanos, Duration margin) {
        return nowNanos - lostAtNanos >= margin.toNanos();
    }

    /**
     * Should a VM's restart attempts count from zero again? When it has some, and has run
     * {@code ranFor} (monotonic) at its current epoch without a restart, at least {@code resetAfter}.
     */
    public static boolean attemptsExpire(int attempts, Duration ranFor, Duration resetAfter) {
        return attempts > 0 && ranFor.compareTo(resetAfter) >= 0;
    }

    /** The attempt limit of a VM whose spec says {@code maxAttempts} (0: the default). */
    public static int maxAttempts(int maxAttempts) {
        return maxAttempts <= 0 ? DEFAULT_MAX_ATTEMPTS : maxAttempts;
    }

    /** May a VM that has been restarted {@code attempts} times be restarted again? */
    public static boolean mayRestart(int attempts, int maxAttempts) {
        return attempts < maxAttempts(maxAttempts);
    }
}
