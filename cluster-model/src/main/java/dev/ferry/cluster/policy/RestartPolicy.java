package dev.ferry.cluster.policy;

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
 * next is decided, so when capacity is short it is the low-priority VMs that wait.
 */
public final class RestartPolicy {
    private RestartPolicy() {}

    /** The cluster's default of {@code max_restart_attempts} when a VM's spec leaves it 0. */
    public static final int DEFAULT_MAX_ATTEMPTS = 3;

    /** A VM to restart. */
    public record Candidate(String vm, int priority, long memoryBytes, int vcpus, String group) {
        Placement.Demand demand() {
            return new Placement.Demand(vm, memoryBytes, vcpus, group);
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

    /** The attempt limit of a VM whose spec says {@code maxAttempts} (0: the default). */
    public static int maxAttempts(int maxAttempts) {
        return maxAttempts <= 0 ? DEFAULT_MAX_ATTEMPTS : maxAttempts;
    }

    /** May a VM that has been restarted {@code attempts} times be restarted again? */
    public static boolean mayRestart(int attempts, int maxAttempts) {
        return attempts < maxAttempts(maxAttempts);
    }
}
