package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.cluster.testing.TestCluster;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.HaPolicy;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.testing.Timing;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** A whole host dies (kill -9 of its agent process, its guests with it). */
class HostFailureTest {
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
            .setHa(HaPolicy.newBuilder().setRestartPriority(vm.equals("d") ? 10 : 0)).build();
        assertEquals("h1", cluster.create(client, spec, "h1").getOwner());
      }
      Timing.await("every VM running on h1", Duration.ofSeconds(10), () -> VMS.stream().allMatch(vm ->
          client.vm(vm).getState() == VmState.VM_STATE_RUNNING));

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
      assertEquals(2, after.values().stream().map(VmView::getOwner).distinct().count());
      assertTrue(cluster.runLog.doubleRuns().isEmpty(), cluster.runLog.doubleRuns().toString());
      Timing.await("the restarted guests making progress", Duration.ofSeconds(10), () -> VMS.stream().allMatch(vm ->
          client.vm(vm).getHeartbeat() > 0));
    }
  }
}
