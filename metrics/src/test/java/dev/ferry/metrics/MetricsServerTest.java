package dev.ferry.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The endpoint over real HTTP: what it serves, what it refuses, and that closing it stops it. */
class MetricsServerTest {
    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    private HttpResponse<String> get(InetSocketAddress at, String path, String method) throws Exception {
        HttpRequest req = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + at.getPort() + path))
                .timeout(Duration.ofSeconds(10))
                .method(method, HttpRequest.BodyPublishers.noBody())
                .build();
        return http.send(req, HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void servesMetricsAndHealthzOnlyAndStopsWhenClosed() throws Exception {
        AgentMetrics metrics = new AgentMetrics("host-x", "sim", "dev");
        metrics.vmsByState(() -> Map.of("running", 2, "paused", 0));
        InetSocketAddress at;
        try (MetricsServer server = metrics.serve(new InetSocketAddress("127.0.0.1", 0))) {
            at = server.address();
            assertTrue(at.getPort() > 0, "a port was chosen");

            HttpResponse<String> scrape = get(at, "/metrics", "GET");
            assertEquals(200, scrape.statusCode());
            assertTrue(
                    scrape.headers().firstValue("Content-Type").orElse("").startsWith("text/plain; version=0.0.4"),
                    scrape.headers().toString());
            Exposition e = Exposition.parse(scrape.body());
            assertEquals(
                    Double.valueOf(1),
                    e.value("ferry_agent_info", "host", "host-x", "driver", "sim")
                            .orElseThrow());
            assertEquals(2.0, e.value("ferry_agent_vms", "state", "running").orElseThrow());
            assertEquals(
                    "gauge", e.type("ferry_vmi_migrations_in_running_phase").orElseThrow());
            assertEquals(
                    "histogram", e.type("ferry_vmi_migration_downtime_seconds").orElseThrow());
            // The JVM's own metrics come with every daemon's scrape.
            assertTrue(e.find("jvm_memory_used_bytes", "area", "heap").size() == 1, "JVM heap metric");
            assertTrue(e.value("process_cpu_seconds_total").isPresent(), "process CPU metric");

            HttpResponse<String> health = get(at, "/healthz", "GET");
            assertEquals(200, health.statusCode());
            assertEquals("ok\n", health.body());

            assertEquals(404, get(at, "/", "GET").statusCode());
            assertEquals(404, get(at, "/metrics/", "GET").statusCode());
            assertEquals(404, get(at, "/metricsx", "GET").statusCode());
            HttpResponse<String> post = get(at, "/metrics", "POST");
            assertEquals(405, post.statusCode());
            assertEquals("GET, HEAD", post.headers().firstValue("Allow").orElse(""));
            assertEquals(405, get(at, "/metrics", "DELETE").statusCode());
            assertEquals(200, get(at, "/metrics", "HEAD").statusCode());
        }
        HttpClient fresh =
                HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        IOException refused = assertThrows(
                IOException.class,
                () -> fresh.send(
                        HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + at.getPort() + "/metrics"))
                                .timeout(Duration.ofSeconds(5))
                                .build(),
                        HttpResponse.BodyHandlers.ofString()));
        assertTrue(
                refused instanceof ConnectException || refused.getCause() instanceof ConnectException,
                refused.toString());
    }

    @Test
    void aMigrationsProgressSeriesExistOnlyWhileItRuns() {
        AgentMetrics metrics = new AgentMetrics("h", "sim", "dev");
        AgentMetrics.OutgoingMigration m = metrics.outgoing("web", 1 << 20);
        m.progress(1, 3 << 20, 4096, 1e6, 2 << 20);
        m.measured(8192, 0.05);
        Exposition during = Exposition.parse(metrics.scrape());
        assertEquals(
                3.0 * (1 << 20),
                during.value("ferry_vmi_migration_data_processed_bytes", "vm", "web")
                        .orElseThrow());
        assertEquals(
                4096.0,
                during.value("ferry_vmi_migration_data_remaining_bytes", "vm", "web")
                        .orElseThrow());
        assertEquals(
                1e6,
                during.value("ferry_vmi_migration_memory_transfer_rate_bytes", "vm", "web")
                        .orElseThrow());
        assertEquals(
                1e6,
                during.value("ferry_vmi_migration_disk_transfer_rate_bytes", "vm", "web")
                        .orElseThrow());
        assertEquals(
                8192.0,
                during.value("ferry_vmi_migration_dirty_memory_rate_bytes", "vm", "web")
                        .orElseThrow());
        assertEquals(1.0, during.value("ferry_vmi_migration_round", "vm", "web").orElseThrow());
        assertEquals(1.0, during.value("ferry_vmi_migrations_in_running_phase").orElseThrow());
        assertEquals(
                1.0,
                during.value("ferry_vmi_migration_started_total", "vm", "web").orElseThrow());

        m.succeeded(0.12, 0.05, 0.04, 0.02, 0.01, 3.5, true);
        m.close();
        m.progress(2, 1, 1, 1, 1); // a late tick after the end brings nothing back
        Exposition after = Exposition.parse(metrics.scrape());
        assertTrue(after.find("ferry_vmi_migration_data_processed_bytes").isEmpty());
        assertTrue(after.find("ferry_vmi_migration_round").isEmpty());
        assertEquals(0.0, after.value("ferry_vmi_migrations_in_running_phase").orElseThrow());
        assertEquals(
                1.0,
                after.value("ferry_vmi_migration_succeeded_total", "vm", "web").orElseThrow());
        assertEquals(
                1.0, after.value("ferry_vmi_migration_downtime_seconds_count").orElseThrow());
        assertEquals(
                0.12, after.value("ferry_vmi_migration_downtime_seconds_sum").orElseThrow(), 1e-9);
        assertEquals(
                1.0,
                after.value("ferry_vmi_migration_downtime_seconds_bucket", "le", "0.2")
                        .orElseThrow());
        assertEquals(
                0.0,
                after.value("ferry_vmi_migration_downtime_seconds_bucket", "le", "0.1")
                        .orElseThrow());
        assertEquals(
                1.0,
                after.value("ferry_vmi_migration_downtime_step_seconds_count", "step", "commit")
                        .orElseThrow());
        assertEquals(
                1.0,
                after.value("ferry_vmi_migration_memory_verifications_total", "result", "match")
                        .orElseThrow());
        assertEquals(
                0.0,
                after.value("ferry_vmi_migration_memory_verifications_total", "result", "mismatch")
                        .orElseThrow());
        assertEquals(
                "counter", after.type("ferry_vmi_migration_succeeded_total").orElseThrow());
    }

    @Test
    void coordinatorLeaderGaugesHaveSeriesOnlyWhileLeading() {
        CoordinatorMetrics metrics = new CoordinatorMetrics("prod", "dev");
        boolean[] leading = {false};
        metrics.leadership(() -> leading[0], () -> leading[0] ? 7 : 0);
        CoordinatorMetrics.LeaderView view = new CoordinatorMetrics.LeaderView() {
            @Override
            public Map<String, Integer> openIntentsByKind() {
                return Map.of("migrate", 2);
            }

            @Override
            public Map<String, Integer> hostsByState() {
                return Map.of("alive", 3, "maintenance", 1);
            }

            @Override
            public Map<String, Integer> vmsRunningByHost() {
                return Map.of("h1", 4, "h2", 0);
            }

            @Override
            public Map<String, Integer> vmsByPhase() {
                return Map.of("running", 4);
            }

            @Override
            public int restartsInFlight() {
                return 1;
            }
        };
        metrics.leaderView(() -> leading[0] ? view : null);
        metrics.zooKeeper("connected");
        Exposition follower = Exposition.parse(metrics.scrape());
        assertEquals(0.0, follower.value("ferry_coordinator_is_leader").orElseThrow());
        assertTrue(follower.find("ferry_cluster_vms_running").isEmpty());
        assertEquals(
                1.0,
                follower.value("ferry_coordinator_zookeeper_state", "state", "connected")
                        .orElseThrow());
        assertEquals(
                0.0,
                follower.value("ferry_coordinator_zookeeper_state", "state", "suspended")
                        .orElseThrow());

        leading[0] = true;
        metrics.tookOffice();
        metrics.intentCreated("migrate");
        metrics.intentFinished("restart", false);
        Exposition leader = Exposition.parse(metrics.scrape());
        assertEquals(1.0, leader.value("ferry_coordinator_is_leader").orElseThrow());
        assertEquals(7.0, leader.value("ferry_coordinator_leader_term").orElseThrow());
        assertEquals(1.0, leader.value("ferry_coordinator_leader_changes_total").orElseThrow());
        assertEquals(
                4.0, leader.value("ferry_cluster_vms_running", "host", "h1").orElseThrow());
        assertEquals(
                2.0,
                leader.value("ferry_coordinator_open_intents", "kind", "migrate")
                        .orElseThrow());
        assertEquals(1.0, leader.value("ferry_coordinator_restarts_in_flight").orElseThrow());
        assertEquals(
                1.0,
                leader.value("ferry_coordinator_intents_finished_total", "kind", "restart", "outcome", "failed")
                        .orElseThrow());
        assertEquals(List.of(), leader.find("ferry_coordinator_intents_finished_total", "outcome", "done"));
    }
}
