package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmState;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.TestCluster;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.junit.jupiter.api.Test;

/**
 * A coordinator leader frozen (SIGSTOP: a long GC, an overloaded host) past its session timeout,
 * deposed meanwhile, and thawed with an order and a write still in hand: the agent refuses the
 * order (it carries an older leader term than the agent has seen) and ZooKeeper refuses the write
 * (the deposed leader's latch node is gone and /term has moved past its term).
 */
class DeposedLeaderTest {
    private static CoordinatorClient client(String endpoint) {
        return new CoordinatorClient(
                Transport.plaintext(),
                CoordinatorClient.fixed(List.of(endpoint)),
                Duration.ofSeconds(30),
                Timing.seconds(10));
    }

    @Test
    void aDeposedLeaderThawedAfterItsSessionExpiredCannotStopAVm() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            Path held = cluster.root.resolve("stop-held");
            Path release = cluster.root.resolve("thawed");
            Path result = cluster.root.resolve("late-result");
            String first = cluster.coordinatorProcess(
                    "c1",
                    DeposedLeaderProcess.class,
                    Duration.ofMillis(500),
                    List.of("held-file=" + held, "release-file=" + release, "result-file=" + result));
            try (CoordinatorClient viaFirst = client(first)) {
                Timing.await(
                        "c1 leading",
                        Duration.ofSeconds(20),
                        () -> viaFirst.status().getLeader().equals(first));
                cluster.agent("h1", Duration.ofSeconds(3), false);
                cluster.create(viaFirst, TestCluster.spec("v", 16L << 20, 100), "h1");
                long deposedTerm = viaFirst.status().getLeaderTerm();

                // c1 takes a stop: the record says stopped-to-be, and the order to h1 is about to leave.
                Thread.ofVirtual().start(() -> {
                    try {
                        viaFirst.stopVm("v", UUID.randomUUID().toString());
                    } catch (RuntimeException e) {
                        // c1 is frozen and then deposed: this caller never hears back
                    }
                });
                Timing.await("c1 about to order the stop", Duration.ofSeconds(20), () -> Files.exists(held));
                cluster.signal("c1", "STOP");

                Coordinator second = cluster.coordinator(Duration.ofMillis(500));
                assertTrue(second.awaitLeadership(Timing.seconds(30)), "c2 leads once c1's session expired");
                try (CoordinatorClient viaSecond = client(second.endpoint().toString())) {
                    long newTerm = viaSecond.status().getLeaderTerm();
                    assertTrue(newTerm > deposedTerm, newTerm + " after " + deposedTerm);
                    // c2 finished c1's stop; then an operator started v again.
                    Timing.await(
                            "c2 finishing c1's stop",
                            Duration.ofSeconds(30),
                            () -> viaSecond.vm("v").getState() == VmState.VM_STATE_STOPPED);
                    assertEquals(
                            VmState.VM_STATE_RUNNING,
                            viaSecond.startVm("v", UUID.randomUUID().toString()).getState());

                    Files.writeString(release, "thawed");
                    cluster.signal("c1", "CONT");
                    Timing.await(
                            "the deposed leader's late order and write answered",
                            Duration.ofSeconds(60),
                            () -> Files.exists(result));
                    List<String> answers = Files.readAllLines(result);
                    String agent = answers.get(0);
                    String zookeeper = answers.get(1);
                    assertTrue(agent.startsWith("agent FAILED_PRECONDITION refused StopVm v"), agent);
                    assertTrue(agent.contains("term " + deposedTerm + ","), agent);
                    assertTrue(agent.contains("older than term " + newTerm), agent);
                    // Refused by the term's own checks (op 0: its latch node, op 1: /term), not by chance.
                    assertTrue(
                            zookeeper.equals("zookeeper refused NONODE at op 0")
                                    || zookeeper.equals("zookeeper refused BADVERSION at op 1"),
                            zookeeper);
                    try (CuratorFramework zk =
                            cluster.zkClients(Duration.ofSeconds(10)).retrying()) {
                        zk.start();
                        assertTrue(zk.blockUntilConnected(30, TimeUnit.SECONDS));
                        assertTrue(
                                new ClusterStore(zk)
                                        .intent("late-decision-of-term-" + deposedTerm)
                                        .isEmpty(),
                                "the deposed leader's late decision was not written");
                    }

                    VmView v = viaSecond.vm("v");
                    assertEquals(VmState.VM_STATE_RUNNING, v.getState(), "the late stop did not reach v");
                    assertEquals("h1", v.getOwner());
                    assertEquals(List.of("h1"), cluster.runLog.runningOn("v"));
                }
            }
        }
    }
}
