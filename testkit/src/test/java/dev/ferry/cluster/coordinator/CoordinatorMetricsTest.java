package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.metrics.Exposition;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmState;
import dev.ferry.rpc.PeerRequirement;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.TestCluster;
import io.grpc.ManagedChannel;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Two coordinator replicas on a real ZooKeeper with two agents, each replica serving its metrics
 * over HTTP: leadership, intents, the leader's picture, a host failure's failover and restart, and
 * a leader change, each read from a real scrape.
 */
class CoordinatorMetricsTest {
    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    private Exposition scrape(Coordinator c) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(
                HttpRequest.newBuilder(URI.create("http://" + c.metricsEndpoint() + "/metrics"))
                        .timeout(Duration.ofSeconds(10))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        return Exposition.parse(r.body());
    }

    private double value(Coordinator c, String name, String... labels) {
        try {
            return scrape(c).value(name, labels).orElse(Double.NaN);
        } catch (IOException e) {
            return Double.NaN;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Double.NaN;
        }
    }

    private Coordinator replica(TestCluster cluster) throws IOException {
        return cluster.coordinator(
                Duration.ofMillis(300),
                null,
                RestartGate.ALWAYS,
                c -> c.withMetricsListen(new InetSocketAddress("127.0.0.1", 0)));
    }

    @Test
    void leadershipIntentsTheLeadersPictureAFailoverAndALeaderChangeAreScraped() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            Coordinator first = replica(cluster);
            assertTrue(first.awaitLeadership(Timing.seconds(20)), "the first replica leads");
            Coordinator second = replica(cluster);
            for (String h : List.of("h1", "h2")) {
                cluster.agent(h, Duration.ofSeconds(3), false);
            }
            Timing.await(
                    "both hosts in the leader's picture",
                    Duration.ofSeconds(20),
                    () -> value(first, "ferry_cluster_hosts", "state", "alive") == 2.0);

            Exposition leader = scrape(first);
            assertEquals(1.0, leader.value("ferry_coordinator_is_leader").orElseThrow());
            assertTrue(leader.value("ferry_coordinator_leader_term").orElseThrow() >= 1);
            assertEquals(
                    1.0, leader.value("ferry_coordinator_leader_changes_total").orElseThrow());
            assertEquals(
                    1.0,
                    leader.value("ferry_coordinator_zookeeper_state", "state", "connected")
                            .orElseThrow());
            assertEquals(
                    0.0,
                    leader.value("ferry_coordinator_zookeeper_state", "state", "suspended")
                            .orElseThrow());
            assertEquals(
                    0.0, leader.value("ferry_cluster_vms_running", "host", "h1").orElseThrow());
            assertEquals(
                    0.0, leader.value("ferry_coordinator_restarts_in_flight").orElseThrow());
            assertEquals(
                    1.0,
                    leader.value("ferry_coordinator_info", "cluster", TestCluster.NAME)
                            .orElseThrow());
            assertTrue(leader.value("jvm_memory_used_bytes", "area", "heap").isPresent());

            Exposition follower = scrape(second);
            assertEquals(0.0, follower.value("ferry_coordinator_is_leader").orElseThrow());
            assertEquals(0.0, follower.value("ferry_coordinator_leader_term").orElseThrow());
            assertEquals(
                    0.0,
                    follower.value("ferry_coordinator_leader_changes_total").orElseThrow());
            assertEquals(
                    1.0,
                    follower.value("ferry_coordinator_zookeeper_state", "state", "connected")
                            .orElseThrow());
            assertTrue(follower.find("ferry_cluster_hosts").isEmpty(), "only the leader shows the cluster");

            // An intent from request to end, and what it leaves running.
            CoordinatorClient client = cluster.client();
            cluster.create(client, TestCluster.spec("web", 16L << 20, 0), "h1");
            Timing.await(
                    "web running on h1 in the picture",
                    Duration.ofSeconds(20),
                    () -> value(first, "ferry_cluster_vms_running", "host", "h1") == 1.0);
            leader = scrape(first);
            assertEquals(
                    1.0,
                    leader.value("ferry_coordinator_intents_created_total", "kind", "create")
                            .orElseThrow());
            assertEquals(
                    1.0,
                    leader.value("ferry_coordinator_intents_finished_total", "kind", "create", "outcome", "done")
                            .orElseThrow());
            assertEquals(
                    1.0, leader.value("ferry_cluster_vms", "phase", "running").orElseThrow());
            assertEquals(
                    0.0, leader.value("ferry_cluster_vms_running", "host", "h2").orElseThrow());
            assertTrue(leader.find("ferry_coordinator_open_intents").isEmpty(), "nothing open");

            // h1 goes: its session ends, the leader fails it over and restarts web on h2.
            cluster.agent("h1").close();
            CoordinatorClient c = client;
            Timing.await("web restarted on h2", Duration.ofSeconds(30), () -> {
                VmView v = c.vm("web");
                return v.getState() == VmState.VM_STATE_RUNNING && v.getOwner().equals("h2");
            });
            Timing.await(
                    "the restart counted",
                    Duration.ofSeconds(20),
                    () -> value(first, "ferry_coordinator_intents_finished_total", "kind", "restart", "outcome", "done")
                            == 1.0);
            leader = scrape(first);
            assertEquals(
                    1.0, leader.value("ferry_coordinator_host_failovers_total").orElseThrow());
            assertEquals(
                    1.0,
                    leader.value("ferry_coordinator_intents_created_total", "kind", "restart")
                            .orElseThrow());
            assertEquals(
                    1.0, leader.value("ferry_cluster_hosts", "state", "alive").orElseThrow());
            assertEquals(
                    1.0, leader.value("ferry_cluster_vms_running", "host", "h2").orElseThrow());
            assertTrue(leader.find("ferry_cluster_vms_running", "host", "h1").isEmpty(), "h1 is gone");

            // Health, over real gRPC, on both replicas.
            for (Coordinator r : List.of(first, second)) {
                ManagedChannel ch = Transport.plaintext().channel(r.endpoint(), PeerRequirement.anyCoordinator());
                try {
                    assertEquals(
                            ServingStatus.SERVING,
                            HealthGrpc.newBlockingStub(ch)
                                    .withDeadlineAfter(20, TimeUnit.SECONDS)
                                    .check(HealthCheckRequest.getDefaultInstance())
                                    .getStatus());
                } finally {
                    ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
                }
            }

            // The leader goes: the other replica takes office, a leader change it counts.
            long oldTerm = (long)
                    leader.value("ferry_coordinator_leader_term").orElseThrow().doubleValue();
            String gone = first.metricsEndpoint();
            first.close();
            assertTrue(second.awaitLeadership(Timing.seconds(30)), "the second replica takes over");
            Exposition next = scrape(second);
            assertEquals(1.0, next.value("ferry_coordinator_is_leader").orElseThrow());
            assertEquals(
                    1.0, next.value("ferry_coordinator_leader_changes_total").orElseThrow());
            assertNotEquals(oldTerm, (long)
                    next.value("ferry_coordinator_leader_term").orElseThrow().doubleValue());
            assertTrue(next.value("ferry_coordinator_leader_term").orElseThrow() > oldTerm);
            // The closed replica's endpoint went with it.
            assertThrows(
                    IOException.class,
                    () -> HttpClient.newBuilder()
                            .connectTimeout(Duration.ofSeconds(5))
                            .build()
                            .send(
                                    HttpRequest.newBuilder(URI.create("http://" + gone + "/metrics"))
                                            .timeout(Duration.ofSeconds(5))
                                            .build(),
                                    HttpResponse.BodyHandlers.ofString()));
        }
    }
}
