package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.hypervisor.sim.SimVm;
import dev.ferry.metrics.Exposition;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Two real agents over gRPC, each serving its metrics over HTTP: a live migration is scraped with
 * a real HTTP client while it runs and after it ended, and the exposition text parsed.
 */
class AgentMetricsTest {
    private AgentPair pair;
    private final HttpClient http =
            HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @BeforeEach
    void start() throws Exception {
        pair = new AgentPair(
                Transport.plaintext(),
                dir -> new SimDriver(),
                c -> c.withMetricsListen(new InetSocketAddress("127.0.0.1", 0)));
    }

    @AfterEach
    void stop() throws Exception {
        if (pair != null) {
            pair.close();
        }
    }

    private Exposition scrape(Agent agent) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(
                HttpRequest.newBuilder(URI.create("http://" + agent.metricsEndpoint() + "/metrics"))
                        .timeout(Duration.ofSeconds(10))
                        .build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        return Exposition.parse(r.body());
    }

    /** A 16 MiB guest writing incompressible pages, sent at 4 MiB/s: a few seconds, round 0 alone seconds. */
    private static VmSpec guest(String name) {
        long memory = 16L << 20;
        return VmSpec.newBuilder()
                .setName(name)
                .setMemoryBytes(memory)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder()
                        .setDirtyRatePagesPerSec(200)
                        .setWorkingSetBytes(memory / 4)
                        .setHotSetBytes(1L << 20)
                        .setHotPercent(50)
                        .setPattern(Pattern.PATTERN_RANDOM))
                .build();
    }

    @Test
    void aScrapeDuringAMigrationShowsItsProgressMovingAndOneAfterShowsItSucceeded() throws Exception {
        pair.createRunning(guest("web"));
        SimVm source = (SimVm) pair.a.instance("web");
        Timing.await("guest running", Duration.ofSeconds(10), () -> source.pageWrites() > 100);

        Exposition before = scrape(pair.a);
        assertEquals(0.0, before.value("ferry_vmi_migrations_in_running_phase").orElseThrow());
        assertTrue(before.find("ferry_vmi_migration_succeeded_total").isEmpty(), "nothing succeeded yet");
        assertEquals(1.0, before.value("ferry_agent_vms", "state", "running").orElseThrow());
        assertEquals(
                1.0,
                before.value("ferry_agent_info", "host", "host-a", "driver", "sim")
                        .orElseThrow());

        List<MigrationEvent> events = new java.util.concurrent.CopyOnWriteArrayList<>();
        CompletableFuture<MigrationEvent> migration = CompletableFuture.supplyAsync(() -> pair.clientA.migrate(
                MigrateRequest.newBuilder()
                        .setVm("web")
                        .setTargetHost("host-b")
                        .setTargetEndpoint(pair.b.endpoint().toString())
                        .setOptions(MigrationOptions.newBuilder()
                                .setVerify(true)
                                .setStreams(2)
                                .setMaxBandwidthBytesPerSec(4L << 20))
                        .build(),
                events::add));

        // Scrape while it runs: every series of a running migration, its processed bytes moving.
        List<Exposition> during = new ArrayList<>();
        TreeSet<Double> processed = new TreeSet<>();
        while (!migration.isDone()) {
            Exposition e = scrape(pair.a);
            if (e.value("ferry_vmi_migration_data_processed_bytes", "vm", "web").isPresent()) {
                during.add(e);
                processed.add(e.value("ferry_vmi_migration_data_processed_bytes", "vm", "web")
                        .orElseThrow());
            }
            Thread.sleep(50);
        }
        MigrationSummary s = migration.get(1, TimeUnit.MINUTES).getSummary();
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, s.getStatus(), s.getError());
        assertTrue(during.size() >= 3, "scrapes that saw the migration running: " + during.size());
        assertTrue(processed.size() >= 3, "processed bytes seen moving: " + processed);
        for (Exposition e : during) {
            assertEquals(1.0, e.value("ferry_vmi_migrations_in_running_phase").orElseThrow());
            assertEquals(
                    16.0 * (1 << 20),
                    e.value("ferry_vmi_migration_data_total_bytes", "vm", "web").orElseThrow());
            for (String series : List.of(
                    "ferry_vmi_migration_data_remaining_bytes",
                    "ferry_vmi_migration_memory_transfer_rate_bytes",
                    "ferry_vmi_migration_disk_transfer_rate_bytes",
                    "ferry_vmi_migration_dirty_memory_rate_bytes",
                    "ferry_vmi_migration_round",
                    "ferry_vmi_migration_transferred_bytes")) {
                assertTrue(e.value(series, "vm", "web").isPresent(), series);
            }
        }
        // The source releases the VM a moment before the migration's series go.
        assertTrue(during.stream()
                .anyMatch(e ->
                        e.value("ferry_agent_vms", "state", "migrating_out").orElseThrow() == 1.0));
        double lastDuring = processed.last();
        assertTrue(lastDuring > 0 && lastDuring <= s.getPagesSent() * 4096.0, lastDuring + " of " + s.getPagesSent());
        // A rate is shown. The cap is checked over the whole migration, not per scrape: a rate over
        // a partial round's first moments may run above it (it once read over 8 MiB/s under load),
        // while a slow machine can only make the whole migration's rate lower.
        double maxRate = during.stream()
                .mapToDouble(e -> e.value("ferry_vmi_migration_memory_transfer_rate_bytes", "vm", "web")
                        .orElseThrow())
                .max()
                .orElseThrow();
        assertTrue(maxRate > 0, "transfer rate " + maxRate);
        double overall = s.getBytesTransferred() / (s.getTotalMs() / 1000.0);
        assertTrue(overall < 1.5 * (4 << 20), "the whole migration's rate " + overall + " B/s, capped at 4 MiB/s");
        assertTrue(
                events.stream().anyMatch(ev -> ev.hasRound() && ev.getRound().getPartial()),
                "round 0 was long enough for the progress ticker's partial reports");

        Exposition after = scrape(pair.a);
        assertEquals(
                1.0,
                after.value("ferry_vmi_migration_succeeded_total", "vm", "web").orElseThrow());
        assertEquals(
                1.0,
                after.value("ferry_vmi_migration_started_total", "vm", "web").orElseThrow());
        assertTrue(after.find("ferry_vmi_migration_failed_total").isEmpty());
        assertEquals(0.0, after.value("ferry_vmi_migrations_in_running_phase").orElseThrow());
        assertTrue(
                after.find("ferry_vmi_migration_data_processed_bytes").isEmpty(),
                "a migration's progress series go when it ends");
        assertEquals(
                1.0, after.value("ferry_vmi_migration_downtime_seconds_count").orElseThrow());
        assertEquals(
                s.getDowntimeMs() / 1000.0,
                after.value("ferry_vmi_migration_downtime_seconds_sum").orElseThrow(),
                1e-9);
        assertEquals(
                1.0,
                after.value("ferry_vmi_migration_downtime_step_seconds_count", "step", "final_pages")
                        .orElseThrow());
        assertEquals(
                1.0, after.value("ferry_vmi_migration_duration_seconds_count").orElseThrow());
        assertEquals(
                1.0,
                after.value("ferry_vmi_migration_memory_verifications_total", "result", "match")
                        .orElseThrow());
        assertEquals(0.0, after.value("ferry_agent_vms", "state", "running").orElseThrow());
        Exposition destination = scrape(pair.b);
        assertEquals(
                1.0, destination.value("ferry_agent_vms", "state", "running").orElseThrow());
        assertEquals(0.0, destination.value("ferry_vmi_migrations_incoming").orElseThrow());
        assertTrue(destination.find("ferry_vmi_migration_started_total").isEmpty(), "the destination sent nothing");
        // JVM metrics come with it.
        assertTrue(after.value("jvm_threads_current").isPresent());

        // The endpoint closes with the agent.
        String endpoint = pair.a.metricsEndpoint();
        assertNotNull(endpoint);
        pair.close();
        pair = null;
        HttpClient fresh =
                HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        assertThrows(
                IOException.class,
                () -> fresh.send(
                        HttpRequest.newBuilder(URI.create("http://" + endpoint + "/metrics"))
                                .timeout(Duration.ofSeconds(5))
                                .build(),
                        HttpResponse.BodyHandlers.ofString()));
    }

    @Test
    void aCancelledMigrationCountsAsCancelled() throws Exception {
        pair.createRunning(guest("db"));
        SimVm source = (SimVm) pair.a.instance("db");
        Timing.await("guest running", Duration.ofSeconds(10), () -> source.pageWrites() > 100);
        CompletableFuture<MigrationEvent> migration = CompletableFuture.supplyAsync(() -> pair.clientA.migrate(
                MigrateRequest.newBuilder()
                        .setVm("db")
                        .setTargetHost("host-b")
                        .setTargetEndpoint(pair.b.endpoint().toString())
                        .setOptions(MigrationOptions.newBuilder().setMaxBandwidthBytesPerSec(1L << 20))
                        .build(),
                e -> {}));
        Timing.await(
                "the migration under way",
                Duration.ofSeconds(20),
                () -> scrapeQuietly(pair.a)
                                .flatMap(e -> e.value("ferry_vmi_migration_data_processed_bytes", "vm", "db"))
                                .orElse(0.0)
                        > 0);
        pair.clientA.cancelMigration("db");
        MigrationSummary s = migration.get(1, TimeUnit.MINUTES).getSummary();
        assertEquals(MigrationPhase.MIGRATION_PHASE_CANCELLED, s.getStatus(), s.getError());
        Exposition after = scrape(pair.a);
        assertEquals(
                1.0,
                after.value("ferry_vmi_migration_cancelled_total", "vm", "db").orElseThrow());
        assertTrue(after.find("ferry_vmi_migration_succeeded_total").isEmpty());
        assertTrue(after.find("ferry_vmi_migration_failed_total").isEmpty());
        assertEquals(0.0, after.value("ferry_vmi_migrations_in_running_phase").orElseThrow());
        assertEquals(
                0.0, after.value("ferry_vmi_migration_downtime_seconds_count").orElseThrow());
        assertEquals(1.0, after.value("ferry_agent_vms", "state", "running").orElseThrow());
    }

    private java.util.Optional<Exposition> scrapeQuietly(Agent agent) {
        try {
            return java.util.Optional.of(scrape(agent));
        } catch (IOException e) {
            return java.util.Optional.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return java.util.Optional.empty();
        }
    }
}
