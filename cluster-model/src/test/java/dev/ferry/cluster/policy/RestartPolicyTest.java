package dev.ferry.cluster.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
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

    @Test
    void afterAnOutageOnlyTheLimitRestartsAtOnceHighestPriorityAndBiggestFirst() {
        List<RestartPolicy.Candidate> waiting =
                List.of(vm("small", 0, 1), vm("low", 0, 2), vm("vip", 9, 1), vm("big", 0, 8), vm("mid", 5, 1));
        assertEquals(
                List.of("vip", "mid"),
                RestartPolicy.admit(waiting, 0, 2).stream()
                        .map(RestartPolicy.Candidate::vm)
                        .toList());
        assertEquals(
                List.of("vip"),
                RestartPolicy.admit(waiting, 3, 4).stream()
                        .map(RestartPolicy.Candidate::vm)
                        .toList());
        assertTrue(RestartPolicy.admit(waiting, 4, 4).isEmpty(), "none while the limit is reached");
        assertTrue(RestartPolicy.admit(waiting, 6, 4).isEmpty(), "none while over it (a lowered limit)");
        assertEquals(5, RestartPolicy.admit(waiting, 0, 100).size());
    }

    @Test
    void restartAttemptsCountFromZeroOnlyAfterAWholeStableRun() {
        Duration resetAfter = Duration.ofMinutes(10);
        assertFalse(RestartPolicy.attemptsExpire(2, Duration.ofMinutes(9).plusSeconds(59), resetAfter));
        assertTrue(RestartPolicy.attemptsExpire(2, Duration.ofMinutes(10), resetAfter));
        assertFalse(RestartPolicy.attemptsExpire(0, Duration.ofDays(30), resetAfter), "nothing to reset");
    }

    @Test
    void theFailoverMarginIsMeasuredOnTheMonotonicClockEvenAcrossItsWrapAround() {
        Duration margin = Duration.ofSeconds(2);
        long lostAt = Long.MAX_VALUE - 1_000_000_000L; // nanoTime may be anywhere, and wraps
        assertFalse(RestartPolicy.marginPassed(lostAt, lostAt + 1_999_999_999L, margin));
        assertTrue(RestartPolicy.marginPassed(lostAt, lostAt + 2_000_000_000L, margin));
        assertFalse(RestartPolicy.marginPassed(lostAt, lostAt - 5, margin), "a reading before the loss");
    }
}
