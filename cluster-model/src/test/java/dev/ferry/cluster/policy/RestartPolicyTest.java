package dev.ferry.cluster.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class RestartPolicyTest {
    static final long GIB = 1L << 30;

    static RestartPolicy.Candidate vm(String name, int priority, long gib) {
        return new RestartPolicy.Candidate(name, priority, gib * GIB, 1, "");
    }

    @Test
    void higherPriorityRestartsFirstThenBiggerThenByName() {
        List<RestartPolicy.Candidate> order =
                RestartPolicy.order(List.of(vm("b", 0, 1), vm("a", 0, 1), vm("c", 5, 1), vm("d", 0, 4)));
        assertEquals(
                List.of("c", "d", "a", "b"),
                order.stream().map(RestartPolicy.Candidate::vm).toList());
    }

    @Test
    void whenCapacityIsShortTheLowPriorityVmsWait() {
        List<Placement.Host> hosts = List.of(new Placement.Host("x", true, false, 4 * GIB, 8, 0, 0, 0, Set.of()));
        RestartPolicy.Plan plan =
                RestartPolicy.plan(List.of(vm("low", 0, 2), vm("high", 10, 2), vm("mid", 5, 2)), hosts, Set.of());
        assertEquals(Map.of("high", "x", "mid", "x"), plan.placed());
        assertEquals(List.of("high", "mid"), List.copyOf(plan.placed().keySet()));
        assertEquals(Set.of("low"), plan.waiting().keySet());
        assertTrue(
                plan.waiting().get("low").contains("x has 0 MiB free"),
                plan.waiting().get("low"));
    }

    @Test
    void eachPlacementUsesUpCapacitySoRestartsSpreadOut() {
        List<Placement.Host> hosts = List.of(
                new Placement.Host("x", true, false, 4 * GIB, 8, 0, 0, 0, Set.of()),
                new Placement.Host("y", true, false, 4 * GIB, 8, 0, 0, 0, Set.of()));
        RestartPolicy.Plan plan = RestartPolicy.plan(
                List.of(vm("a", 0, 2), vm("b", 0, 2), vm("c", 0, 2), vm("d", 0, 2)), hosts, Set.of());
        assertEquals(Map.of("a", "x", "b", "y", "c", "x", "d", "y"), plan.placed());
        assertTrue(plan.waiting().isEmpty());
    }

    @Test
    void theFailedHostNeverTakesItsOwnVmsBack() {
        List<Placement.Host> hosts = List.of(
                new Placement.Host("dead", true, false, 64 * GIB, 64, 0, 0, 0, Set.of()),
                new Placement.Host("y", true, false, 4 * GIB, 8, 0, 0, 0, Set.of()));
        RestartPolicy.Plan plan = RestartPolicy.plan(List.of(vm("a", 0, 1)), hosts, Set.of("dead"));
        assertEquals(Map.of("a", "y"), plan.placed());
    }

    @Test
    void attemptsAreCappedByTheSpecOrTheClusterDefault() {
        assertEquals(3, RestartPolicy.maxAttempts(0));
        assertTrue(RestartPolicy.mayRestart(2, 0));
        assertFalse(RestartPolicy.mayRestart(3, 0));
        assertTrue(RestartPolicy.mayRestart(4, 5));
        assertFalse(RestartPolicy.mayRestart(1, 1));
    }
}
