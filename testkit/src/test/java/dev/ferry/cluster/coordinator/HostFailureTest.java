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
import dev.ferry.testkit.TestCluster;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** A whole host dies (kill -9 of its agent process, its guests with it). */
class HostFailureTest {
    @Test
    void aVmPastItsMaxRestartAttemptsIsLeftFailedWithTheReason() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            cluster.coordinator(Duration.ofMillis(300));
            for (String h : List.of("h1", "h2", "h3")) {
                cluster.agent(h, Duration.ofSeconds(3), false);
            }
            CoordinatorClient client = cluster.client();
            VmSpec spec = TestCluster.spec("once", 16L << 20, 0).toBuilder()
                    .setHa(HaPolicy.newBuilder().setMaxRestartAttempts(1))
                    .build();
            cluster.create(client, spec, "h1");

            cluster.agent("h1").close(); // the first failure: restarted (attempt 1 of 1)
            Timing.await("once restarted", Duration.ofSeconds(20), () -> {
                VmView v = client.vm("once");
                return v.getState() == VmState.VM_STATE_RUNNING && !v.getOwner().equals("h1");
            });
            String second = client.vm("once").getOwner();
            cluster.agent(second).close(); // the second: no attempt left

            Timing.await(
                    "once given up",
                    Duration.ofSeconds(20),
                    () -> client.vm("once").getState() == VmState.VM_STATE_FAILED);
            VmView v = client.vm("once");
            assertEquals("host " + second + " failed; gave up after 1 restart attempt (max 1)", v.getReason());
            assertEquals(2, v.getEpoch());
            assertTrue(cluster.runLog.runningOn("once").isEmpty());
            // An operator's start brings it back, with its attempts counted afresh.
            VmView started = client.startVm("once", java.util.UUID.randomUUID().toString());
            assertEquals(VmState.VM_STATE_RUNNING, started.getState());
            assertEquals(0, started.getRestartAttempts());
        }
    }

    static final List<String> VMS = List.of("a", "b", "c", "d");

    @Test
    void killedHostsVmsRunAgainElsewhereOnExactlyOneHostWithTheEpochMoved() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            cluster.coordinator(Duration.ofMillis(600));
            for (String h : List.of("h1", "h2", "h3")) {
                cluster.agentProcess(h, Duration.ofSeconds(3));
            }
            cluster.awaitProcesses();
            CoordinatorClient client = cluster.client();
            for (String vm : VMS) {
                VmSpec spec = TestCluster.spec(vm, 16L << 20, 500).toBuilder()
                        .setHa(HaPolicy.newBuilder().setRestartPriority(vm.equals("d") ? 10 : 0))
                        .build();
                assertEquals("h1", cluster.create(client, spec, "h1").getOwner());
            }
            Timing.await(
                    "every VM running on h1",
                    Duration.ofSeconds(10),
                    () -> VMS.stream().allMatch(vm -> client.vm(vm).getState() == VmState.VM_STATE_RUNNING));

            cluster.kill("h1");

            Map<String, VmView> after = new HashMap<>();
            Timing.await("every VM of h1 running elsewhere", Duration.ofSeconds(30), () -> {
                for (String vm : VMS) {
                    VmView v = client.vm(vm);
                    if (v.getState() != VmState.VM_STATE_RUNNING || v.getOwner().equals("h1")) {
                        return false;
                    }
                    after.put(vm, v);
                }
                return true;
            });
            for (String vm : VMS) {
                VmView v = after.get(vm);
                assertNotEquals("h1", v.getOwner());
                assertEquals(2, v.getEpoch(), vm + " restarted once, at the next epoch");
                assertEquals(1, v.getRestartAttempts());
                assertEquals(List.of(v.getOwner()), cluster.runLog.runningOn(vm), vm + " runs on exactly one host");
            }
            // Restarted VMs are spread over the survivors, not piled on one.
            assertEquals(
                    2, after.values().stream().map(VmView::getOwner).distinct().count());
            assertTrue(
                    cluster.runLog.doubleRuns().isEmpty(),
                    cluster.runLog.doubleRuns().toString());
            Timing.await(
                    "the restarted guests making progress",
                    Duration.ofSeconds(10),
                    () -> VMS.stream().allMatch(vm -> client.vm(vm).getHeartbeat() > 0));
        }
    }
}
