package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.client.AgentClient;
import dev.ferry.agent.cluster.ClusterMember;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.coordinator.HostView;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.RunLog;
import dev.ferry.testkit.TestCluster;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A host alive but cut off from ZooKeeper (its connection goes through a proxy the test cuts):
 * the most dangerous failure, because its VMs keep running unless it stops them itself.
 */
class PartitionTest {
    static final List<String> VMS = List.of("p1", "p2", "p3");

    @Test
    void partitionedAgentFencesBeforeItsVmsRestartElsewhere() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            cluster.coordinator(Duration.ofMillis(600));
            cluster.agent("h1", Duration.ofSeconds(3), true);
            cluster.agent("h2", Duration.ofSeconds(3), false);
            cluster.agent("h3", Duration.ofSeconds(3), false);
            CoordinatorClient client = cluster.client();
            for (String vm : VMS) {
                cluster.create(client, TestCluster.spec(vm, 16L << 20, 1000), "h1");
            }

            cluster.proxy("h1").cut();

            Timing.await(
                    "h1's VMs running elsewhere",
                    Duration.ofSeconds(30),
                    () -> VMS.stream().allMatch(vm -> {
                        VmView v = client.vm(vm);
                        return v.getState() == VmState.VM_STATE_RUNNING
                                && !v.getOwner().equals("h1");
                    }));
            // h1 is still alive: it froze its own VMs (killing nothing yet), and said why.
            ClusterMember h1 = cluster.agent("h1").member();
            assertTrue(h1.fences() >= 1, "h1 fenced");
            try (AgentClient agent = new AgentClient(
                    Transport.plaintext(), "h1", cluster.agent("h1").agent().endpoint(), Duration.ofSeconds(10))) {
                for (String vm : VMS) {
                    VmStatus s = agent.getVm(vm);
                    assertEquals(VmState.VM_STATE_FENCED, s.getState());
                    assertEquals(ClusterMember.FENCE_REASON, s.getReason());
                }
            }
            // The checker: per VM, h1's copy ended before any other copy began.
            List<String> doubles = cluster.runLog.doubleRuns();
            assertTrue(doubles.isEmpty(), doubles.toString());
            for (String vm : VMS) {
                long fenced = cluster.runLog.intervals().stream()
                        .filter(i -> i.vm().equals(vm) && i.host().equals("h1"))
                        .mapToLong(RunLog.Interval::end)
                        .max()
                        .orElseThrow();
                long restarted = cluster.runLog.intervals().stream()
                        .filter(i -> i.vm().equals(vm) && !i.host().equals("h1"))
                        .mapToLong(RunLog.Interval::begin)
                        .min()
                        .orElseThrow();
                assertTrue(fenced < restarted, vm + ": fenced on h1 before it started elsewhere");
                VmView v = client.vm(vm);
                assertNotEquals("h1", v.getOwner());
                assertEquals(2, v.getEpoch());
            }

            // The partition heals: h1 joins again under a new session, with nothing of its old VMs.
            cluster.proxy("h1").heal();
            Timing.await(
                    "h1 back in the cluster",
                    Duration.ofSeconds(20),
                    () -> client.hosts().stream().anyMatch(h -> h.getId().equals("h1") && h.getAlive()));
            HostView back = client.hosts().stream()
                    .filter(h -> h.getId().equals("h1"))
                    .findFirst()
                    .orElseThrow();
            assertTrue(back.getVmsList().isEmpty(), back.toString());
            // Back, h1 asks about each VM it froze: the cluster gave them to others, so it kills its copies.
            try (AgentClient agent = new AgentClient(
                    Transport.plaintext(), "h1", cluster.agent("h1").agent().endpoint(), Duration.ofSeconds(10))) {
                for (String vm : VMS) {
                    Timing.await(vm + ": h1's frozen copy killed", Duration.ofSeconds(20), () -> {
                        try {
                            agent.getVm(vm);
                            return false;
                        } catch (dev.ferry.agent.client.AgentCallException e) {
                            return e.code() == io.grpc.Status.Code.NOT_FOUND;
                        }
                    });
                }
            }
            for (String vm : VMS) {
                assertEquals(List.of(client.vm(vm).getOwner()), cluster.runLog.runningOn(vm));
            }
            assertTrue(
                    cluster.runLog.doubleRuns().isEmpty(),
                    cluster.runLog.doubleRuns().toString());
        }
    }
}
