package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.HaPolicy;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.GatedAgentActions;
import dev.ferry.testkit.TestCluster;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** How restarts are paced and counted: the cluster-wide limit, the reset of attempts, the restart gate. */
class RestartLimitsTest {
    private static VmSpec vm(String name, int priority, long mib) {
        return TestCluster.spec(name, mib << 20, 100).toBuilder()
                .setHa(HaPolicy.newBuilder().setRestartPriority(priority).setMaxRestartAttempts(3))
                .build();
    }

    @Test
    void manyOrphanedVmsRestartNeverMoreThanTheLimitAtOnceAndTheMostImportantFirst() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            GatedAgentActions agents = new GatedAgentActions(TestCluster.grpcAgents());
            agents.pace(req -> req.getRequestId().startsWith("restart."));
            cluster.coordinator(
                    Duration.ofMillis(300), agents, RestartGate.ALWAYS, c -> c.withMaxConcurrentRestarts(2));
            for (String h : List.of("h1", "h2", "h3")) {
                cluster.agent(h, Duration.ofSeconds(3), false);
            }
            CoordinatorClient client = cluster.client();
            List<VmSpec> specs = List.of(
                    vm("a", 0, 32), vm("b", 7, 16), vm("c", 3, 16), vm("d", 0, 16), vm("e", 9, 16), vm("f", 1, 16));
            for (VmSpec s : specs) {
                cluster.create(client, s, "h1");
            }

            cluster.agent("h1").close(); // six VMs orphaned at once

            for (int released = 0; released < specs.size(); released++) {
                int waiting = Math.min(2, specs.size() - released);
                Timing.await(
                        waiting + " restarts waiting at the agents",
                        Duration.ofSeconds(30),
                        () -> agents.waiting() == waiting);
                assertTrue(agents.inFlight() <= 2, agents.inFlight() + " restarts in flight");
                agents.release(1);
                int through = released + 1;
                Timing.await(
                        "a released restart through",
                        Duration.ofSeconds(30),
                        () -> agents.creates() >= through + specs.size());
            }
            Timing.await(
                    "every VM of h1 running elsewhere",
                    Duration.ofSeconds(30),
                    () -> specs.stream().allMatch(s -> {
                        VmView v = client.vm(s.getName());
                        return v.getState() == VmState.VM_STATE_RUNNING
                                && !v.getOwner().equals("h1");
                    }));

            assertEquals(2, agents.peakInFlight(), "never more than the limit in flight, and the limit used");
            List<String> order = agents.arrivals();
            assertEquals(Set.of("e", "b"), Set.copyOf(order.subList(0, 2)), "highest priority first: " + order);
            assertEquals(List.of("c", "f", "a", "d"), order.subList(2, 6), "then by priority, then size: " + order);
            assertTrue(
                    cluster.runLog.doubleRuns().isEmpty(),
                    cluster.runLog.doubleRuns().toString());
        }
    }

    @Test
    void aVmThatRanStablyAfterARestartCountsItsRestartAttemptsFromZeroAgain() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            Duration resetAfter = Timing.seconds(3);
            cluster.coordinator(
                    Duration.ofMillis(300), null, RestartGate.ALWAYS, c -> c.withRestartResetAfter(resetAfter));
            for (String h : List.of("h1", "h2")) {
                cluster.agent(h, Duration.ofSeconds(3), false);
            }
            CoordinatorClient client = cluster.client();
            cluster.create(client, vm("steady", 0, 16), "h1");

            cluster.agent("h1").close();
            Timing.await("steady restarted on h2", Duration.ofSeconds(20), () -> {
                VmView v = client.vm("steady");
                return v.getState() == VmState.VM_STATE_RUNNING && v.getOwner().equals("h2");
            });
            VmView restarted = client.vm("steady");
            assertEquals(1, restarted.getRestartAttempts());

            Timing.await(
                    "steady's restart attempts reset after it ran " + resetAfter.toMillis() + " ms",
                    Duration.ofSeconds(30),
                    () -> client.vm("steady").getRestartAttempts() == 0);
            VmView after = client.vm("steady");
            assertEquals(VmState.VM_STATE_RUNNING, after.getState());
            assertEquals(restarted.getEpoch(), after.getEpoch(), "nothing else changed");
            assertEquals("h2", after.getOwner());
        }
    }

    @Test
    void aRestartHeldByTheGateWaitsWithTheReasonAndGoesOnceTheGateOpens() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            AtomicBoolean open = new AtomicBoolean();
            RestartGate gate = (host, vm, now) -> open.get()
                    ? RestartGate.NOW
                    : new RestartGate.NotBefore(now + Duration.ofHours(1).toNanos(), host + " may still run " + vm);
            cluster.coordinator(Duration.ofMillis(300), null, gate, c -> c);
            for (String h : List.of("h1", "h2")) {
                cluster.agent(h, Duration.ofSeconds(3), false);
            }
            CoordinatorClient client = cluster.client();
            cluster.create(client, vm("held", 0, 16), "h1");

            cluster.agent("h1").close();
            Timing.await(
                    "the restart held, with the gate's reason",
                    Duration.ofSeconds(20),
                    () -> client.vm("held").getReason().equals("restart held: h1 may still run held"));
            VmView waiting = client.vm("held");
            assertNotEquals(VmState.VM_STATE_RUNNING, waiting.getState());
            assertEquals("h1", waiting.getOwner(), "its record has not moved");
            assertEquals(1, waiting.getEpoch());

            open.set(true);
            Timing.await("held restarted once the gate opened", Duration.ofSeconds(20), () -> {
                VmView v = client.vm("held");
                return v.getState() == VmState.VM_STATE_RUNNING && v.getOwner().equals("h2");
            });
            assertEquals(2, client.vm("held").getEpoch());
        }
    }
}
