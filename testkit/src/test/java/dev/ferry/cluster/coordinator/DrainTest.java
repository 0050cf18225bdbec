package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.MoveState;
import dev.ferry.proto.cluster.VmMove;
import dev.ferry.proto.coordinator.DrainProgress;
import dev.ferry.proto.coordinator.DrainRequest;
import dev.ferry.proto.coordinator.HostView;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmState;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.RunLog;
import dev.ferry.testkit.TestCluster;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/** Maintenance: a host's VMs move off it live, under load, and it takes no new VM until activated. */
class DrainTest {
    static HostView host(CoordinatorClient c, String id) {
        return c.hosts().stream().filter(h -> h.getId().equals(id)).findFirst().orElseThrow();
    }

    @Test
    void drainingAHostWithBusyVmsMovesThemAllLiveAndStopsNone() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            cluster.coordinator(Duration.ofMillis(500));
            for (String h : List.of("h1", "h2", "h3")) {
                cluster.agent(h, Duration.ofSeconds(3), false);
            }
            CoordinatorClient client = cluster.client();
            List<String> vms = List.of("w1", "w2", "w3", "w4");
            for (String vm : vms) {
                // Each guest rewrites memory at 16 MiB/s: the migrations have to converge against it.
                cluster.create(client, TestCluster.spec(vm, 48L << 20, 4096), "h1");
            }
            Timing.await(
                    "guests counting",
                    Duration.ofSeconds(10),
                    () -> vms.stream().allMatch(v -> client.vm(v).getHeartbeat() > 100));
            Map<String, Long> before = new HashMap<>();
            for (String vm : vms) {
                before.put(vm, client.vm(vm).getHeartbeat());
            }

            List<DrainProgress> progress = new ArrayList<>();
            DrainProgress end = client.drain(
                    DrainRequest.newBuilder()
                            .setHost("h1")
                            .setParallel(2)
                            .setRequestId(UUID.randomUUID().toString())
                            .build(),
                    progress::add,
                    true);

            assertEquals(IntentState.INTENT_STATE_DONE, end.getState(), end.toString());
            assertEquals(4, end.getMovesCount());
            for (VmMove m : end.getMovesList()) {
                assertEquals(MoveState.MOVE_STATE_DONE, m.getState(), m.toString());
                assertFalse(m.getCold(), m.getVm() + " moved live");
            }
            assertFalse(progress.isEmpty(), "progress was streamed");
            for (String vm : vms) {
                VmView v = client.vm(vm);
                assertNotEquals("h1", v.getOwner());
                assertEquals(VmState.VM_STATE_RUNNING, v.getState());
                assertEquals(2, v.getEpoch());
                assertTrue(v.getHeartbeat() > before.get(vm), vm + ": the guest kept counting (no restart)");
                // One stretch on h1, one on its new host: paused for the switchover, never stopped.
                List<RunLog.Interval> runs = cluster.runLog.intervals().stream()
                        .filter(i -> i.vm().equals(vm))
                        .toList();
                assertEquals(2, runs.size(), runs.toString());
                // Paused for its switchover, not stopped: a generous bound, since a loaded 2-core machine
                // can stretch a switchover; the downtime itself is the migration benchmarks' business.
                long gapMs = (runs.get(1).begin() - runs.get(0).end()) / 1_000_000;
                assertTrue(gapMs < Timing.seconds(15).toMillis(), vm + " was paused " + gapMs + " ms");
            }
            assertTrue(
                    cluster.runLog.doubleRuns().isEmpty(),
                    cluster.runLog.doubleRuns().toString());
            HostView h1 = host(client, "h1");
            assertTrue(h1.getMaintenance() && h1.getAlive() && h1.getVmsList().isEmpty(), h1.toString());

            // In maintenance, h1 takes no new VM; activated, it does again.
            assertNotEquals(
                    "h1",
                    cluster.create(client, TestCluster.spec("n1", 16L << 20, 0), null)
                            .getOwner());
            client.activate("h1", UUID.randomUUID().toString());
            assertFalse(host(client, "h1").getMaintenance());
            assertEquals(
                    "h1",
                    cluster.create(client, TestCluster.spec("n2", 16L << 20, 0), null)
                            .getOwner(),
                    "the emptiest host, h1, is chosen again");
        }
    }

    @Test
    void aVmThatCannotMoveIsReportedWithTheReasonAndKeepsRunning() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            cluster.coordinator(Duration.ofMillis(500));
            cluster.agent("h1", Duration.ofSeconds(3), false);
            cluster.agent("h2", Duration.ofSeconds(3), false);
            CoordinatorClient client = cluster.client();
            cluster.create(client, TestCluster.spec("stuck", 16L << 20, 100), "h1");
            // h2 in maintenance too: nowhere to go.
            client.drain(
                    DrainRequest.newBuilder()
                            .setHost("h2")
                            .setRequestId(UUID.randomUUID().toString())
                            .build(),
                    p -> {},
                    true);

            DrainProgress end = client.drain(
                    DrainRequest.newBuilder()
                            .setHost("h1")
                            .setRequestId(UUID.randomUUID().toString())
                            .build(),
                    p -> {},
                    true);

            assertEquals(IntentState.INTENT_STATE_FAILED, end.getState());
            VmMove m = end.getMoves(0);
            assertEquals(MoveState.MOVE_STATE_FAILED, m.getState());
            assertEquals("no host fits stuck (16 MiB, 1 vCPU): h2 is in maintenance", m.getReason());
            assertTrue(end.getMessage().contains("stuck (no host fits"), end.getMessage());
            VmView v = client.vm("stuck");
            assertEquals("h1", v.getOwner());
            assertEquals(VmState.VM_STATE_RUNNING, v.getState());
        }
    }
}
