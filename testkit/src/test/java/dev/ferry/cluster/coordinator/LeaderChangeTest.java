package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.MoveState;
import dev.ferry.proto.coordinator.DrainProgress;
import dev.ferry.proto.coordinator.DrainRequest;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmState;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.TestCluster;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * The coordinator leader is killed (kill -9 of its process: its ZooKeeper session is not closed
 * but expires, as in a real crash) in the middle of its work; the next leader finishes it from
 * what is in ZooKeeper.
 */
class LeaderChangeTest {
    @Test
    void aLeaderKilledMidRestartLeavesTheRestartToTheNextLeaderWhichFinishesItAsDecided() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            Path held = cluster.root.resolve("restart-held");
            String first = cluster.coordinatorProcess("c1", Duration.ofMillis(500), held);
            CoordinatorClient client = cluster.client();
            Timing.await(
                    "c1 leading",
                    Duration.ofSeconds(20),
                    () -> client.status().getLeader().equals(first));
            String second = cluster.coordinatorProcess("c2", Duration.ofMillis(500), null);
            for (String h : List.of("h1", "h2", "h3")) {
                cluster.agent(h, Duration.ofSeconds(3), false);
            }
            cluster.create(client, TestCluster.spec("r1", 16L << 20, 500), "h1");

            cluster.agent("h1").close(); // h1 leaves: its session closes, its VM stops
            Timing.await("c1 deciding the restart", Duration.ofSeconds(20), () -> Files.exists(held));
            VmView decided = client.vm("r1");
            assertNotEquals("h1", decided.getOwner());
            assertEquals(2, decided.getEpoch());
            assertNotEquals(VmState.VM_STATE_RUNNING, decided.getState());

            cluster.killProcess("c1"); // between its decision and the agent call
            Timing.await("r1 running after the leader change", Duration.ofSeconds(30), () -> {
                try {
                    return client.vm("r1").getState() == VmState.VM_STATE_RUNNING;
                } catch (dev.ferry.cluster.client.CoordinatorCallException e) {
                    return false; // the killed leader's channel closing under the call: ask again
                }
            });
            assertEquals(second, client.status().getLeader());
            VmView after = client.vm("r1");
            assertEquals(decided.getOwner(), after.getOwner(), "the new leader carried out the old one's decision");
            assertEquals(2, after.getEpoch());
            assertEquals(List.of(after.getOwner()), cluster.runLog.runningOn("r1"));
            assertTrue(
                    cluster.runLog.doubleRuns().isEmpty(),
                    cluster.runLog.doubleRuns().toString());
        }
    }

    @Test
    void aReplicaThatDoesNotLeadSendsClientsToTheLeader() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            Coordinator leader = cluster.coordinator(Duration.ofMillis(500));
            assertTrue(leader.awaitLeadership(Timing.seconds(10)));
            Coordinator follower = cluster.coordinator(Duration.ofMillis(500));
            cluster.agent("h1", Duration.ofSeconds(3), false);
            try (CoordinatorClient viaFollower = new CoordinatorClient(
                    dev.ferry.rpc.Transport.plaintext(),
                    CoordinatorClient.fixed(List.of(follower.endpoint().toString())),
                    Duration.ofSeconds(30),
                    Timing.seconds(10))) {
                assertEquals(
                        "h1",
                        cluster.create(viaFollower, TestCluster.spec("x", 16L << 20, 0), null)
                                .getOwner());
                assertEquals(leader.endpoint().toString(), viaFollower.status().getLeader());
                assertEquals(2, viaFollower.status().getCoordinatorsCount());
            }
        }
    }

    @Test
    void aLeaderKilledMidDrainLeavesTheDrainToTheNextLeaderAndEveryVmMovesOnceLive() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            String first = cluster.coordinatorProcess("c1", Duration.ofMillis(500), null);
            CoordinatorClient client = cluster.client();
            Timing.await(
                    "c1 leading",
                    Duration.ofSeconds(20),
                    () -> client.status().getLeader().equals(first));
            String second = cluster.coordinatorProcess("c2", Duration.ofMillis(500), null);
            for (String h : List.of("h1", "h2", "h3")) {
                cluster.agent(h, Duration.ofSeconds(3), false);
            }
            List<String> vms = List.of("d1", "d2", "d3");
            for (String vm : vms) {
                cluster.create(client, TestCluster.spec(vm, 32L << 20, 1000), "h1");
            }
            Timing.await(
                    "guests counting",
                    Duration.ofSeconds(10),
                    () -> vms.stream().allMatch(v -> client.vm(v).getHeartbeat() > 0));
            Map<String, Long> beats = new HashMap<>();
            for (String vm : vms) {
                beats.put(vm, client.vm(vm).getHeartbeat());
            }

            AtomicReference<DrainProgress> seen = new AtomicReference<>();
            // Capped at 6 MiB/s, each move takes a couple of seconds: time enough to kill the leader mid-move.
            DrainRequest req = DrainRequest.newBuilder()
                    .setHost("h1")
                    .setParallel(1)
                    .setRequestId(UUID.randomUUID().toString())
                    .setOptions(MigrationOptions.newBuilder().setMaxBandwidthBytesPerSec(6L << 20))
                    .build();
            CompletableFuture<DrainProgress> drain =
                    CompletableFuture.supplyAsync(() -> client.drain(req, seen::set, true));
            Timing.await("one VM moved and the next moving", Duration.ofSeconds(30), () -> {
                DrainProgress p = seen.get();
                return p != null
                        && p.getMovesList().stream().anyMatch(m -> m.getState() == MoveState.MOVE_STATE_DONE)
                        && p.getMovesList().stream().anyMatch(m -> m.getState() == MoveState.MOVE_STATE_MIGRATING);
            });
            // Into the second move's pre-copy: its source agent holds the VM for the migration.
            String moving = seen.get().getMovesList().stream()
                    .filter(m -> m.getState() == MoveState.MOVE_STATE_MIGRATING)
                    .findFirst()
                    .orElseThrow()
                    .getVm();
            try (dev.ferry.agent.client.AgentClient h1 = new dev.ferry.agent.client.AgentClient(
                    dev.ferry.rpc.Transport.plaintext(),
                    "h1",
                    cluster.agent("h1").agent().endpoint(),
                    Duration.ofSeconds(5))) {
                Timing.await(
                        moving + " migrating out of h1",
                        Duration.ofSeconds(20),
                        () -> h1.getVm(moving).getState() == dev.ferry.proto.vm.VmState.VM_STATE_MIGRATING_OUT);
            }

            cluster.killProcess("c1");

            // The caller's stream broke with c1; it retried with the same request id until c2 led.
            DrainProgress end = drain.get(Timing.seconds(60).toMillis(), TimeUnit.MILLISECONDS);
            assertEquals(second, client.status().getLeader());
            assertEquals(IntentState.INTENT_STATE_DONE, end.getState(), end.toString());
            assertTrue(
                    end.getMovesList().stream().allMatch(m -> m.getState() == MoveState.MOVE_STATE_DONE),
                    end.toString());
            for (String vm : vms) {
                VmView v = client.vm(vm);
                assertNotEquals("h1", v.getOwner());
                assertEquals(VmState.VM_STATE_RUNNING, v.getState());
                assertEquals(2, v.getEpoch(), vm + " moved exactly once");
                assertTrue(
                        v.getHeartbeat() >= beats.get(vm),
                        vm + " kept its memory: heartbeat " + v.getHeartbeat() + " after " + beats.get(vm));
            }
            assertTrue(client.hosts().stream().anyMatch(h -> h.getId().equals("h1") && h.getMaintenance()));
            assertTrue(
                    cluster.runLog.doubleRuns().isEmpty(),
                    cluster.runLog.doubleRuns().toString());
        }
    }
}
