package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.testing.Timing;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.io.TempDir;

/**
 * The ferry CLI against a real local cluster: the coordinator (with its embedded ZooKeeper) and the
 * agents are separate processes on loopback; every command goes through the coordinator.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class LocalClusterCliTest {
    @TempDir
    static Path tmp;

    static Path dir;

    @BeforeAll
    static void up() {
        dir = tmp.resolve("cluster");
        CliRun r = CliRun.of(
                "cluster",
                "up",
                "--dir",
                dir.toString(),
                "--hosts",
                "3",
                "--session-timeout-ms",
                Long.toString(Timing.seconds(3).toMillis()));
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("host-3"), r.out());
        assertTrue(r.out().contains("zookeeper"), r.out());
    }

    @AfterAll
    static void down() {
        if (Files.exists(dir.resolve("cluster.json"))) {
            ClusterFile f = ClusterFile.read(dir);
            CliRun r = CliRun.of("cluster", "down", "--dir", dir.toString());
            assertEquals(0, r.exit(), r.err());
            for (ClusterFile.Host h : f.hosts()) {
                assertTrue(LocalCluster.alive(h).isEmpty(), h.id() + " still running after cluster down");
                assertFalse(Files.exists(Path.of(h.ramDir())), "RAM files of " + h.id() + " left behind");
            }
            assertTrue(
                    LocalCluster.aliveCoordinator(f.coordinator()).isEmpty(),
                    "coordinator still running after cluster down");
            assertFalse(Files.exists(Path.of(f.coordinator().zkDataDir())), "ZooKeeper data left behind");
        }
    }

    private static CliRun ferry(String... args) {
        String[] all = new String[args.length + 2];
        System.arraycopy(args, 0, all, 0, args.length);
        all[args.length] = "--cluster";
        all[args.length + 1] = dir.toString();
        return CliRun.of(all);
    }

    /** {@code args} run with the local cluster's operator certificate (what --zk needs). */
    private static CliRun withOperator(ClusterFile f, String... args) {
        List<String> all = new java.util.ArrayList<>(List.of(args));
        all.addAll(dev.ferry.pki.CredentialFiles.in(
                        Path.of(f.pki(), "operator"), "operator", Path.of(f.pki(), dev.ferry.pki.RevocationList.FILE))
                .flags());
        return CliRun.of(all.toArray(String[]::new));
    }

    private static JsonNode json(CliRun r) throws Exception {
        return Json.MAPPER.readTree(r.out());
    }

    @Test
    @Order(1)
    void createListAndMigrateLiveWithVerification() throws Exception {
        CliRun created = ferry(
                "vm",
                "create",
                "web",
                "--memory",
                "128M",
                "--dirty-rate",
                "8M",
                "--working-set",
                "32M",
                "--host",
                "host-1");
        assertEquals(0, created.exit(), created.err());

        JsonNode list = json(ferry("vm", "list", "--json"));
        assertEquals("web", list.get("vms").get(0).get("name").asText());
        assertEquals("running", list.get("vms").get(0).get("state").asText());

        dev.ferry.testing.Timing.await(
                "web's first console line on host-1",
                java.time.Duration.ofSeconds(20),
                () -> ferry("vm", "console", "web", "--history").out().contains("FERRY-GUEST hb=1 "));
        // A moment well after the first line, before the migration: --since it on host-2 needs the
        // times of host-1's part of the history (without them, all of it was shown).
        dev.ferry.testing.Timing.await(
                "three seconds of console after hb=1",
                java.time.Duration.ofSeconds(30),
                () -> ferry("vm", "console", "web", "--history", "--tail", "1")
                        .out()
                        .matches("(?s).*FERRY-GUEST hb=([3-9]\\d|\\d{3,}) .*"));
        String cut = java.time.Instant.now().toString();
        CliRun migrated = ferry("migrate", "web", "--to", "host-2", "--verify", "--json");
        assertEquals(0, migrated.exit(), migrated.err() + migrated.out());
        JsonNode m = json(migrated);
        for (String key : List.of(
                "vm",
                "source",
                "target",
                "status",
                "totalMs",
                "downtimeMs",
                "rounds",
                "bytesTransferred",
                "memoryVerified")) {
            assertTrue(m.has(key), "missing " + key + " in " + m);
        }
        assertEquals("completed", m.get("status").asText());
        assertEquals("host-1", m.get("source").asText());
        assertEquals("host-2", m.get("target").asText());
        assertTrue(m.get("memoryVerified").asBoolean());
        assertTrue(m.get("rounds").asInt() >= 2);

        JsonNode after = json(ferry("vm", "show", "web", "--json"));
        assertEquals("host-2", after.get("host").asText());
        assertEquals(2, after.get("epoch").asInt());
        assertEquals("running", after.get("desired").asText());

        // The sim guest's console moved with it: host-2's history starts with host-1's first line.
        CliRun history = ferry("vm", "console", "web", "--history", "--tail", "all");
        assertEquals(0, history.exit(), history.err());
        assertTrue(history.out().startsWith("FERRY-GUEST hb=1 "), history.out());

        // --since the moment before the migration: from host-1's lines after it, its early ones left out.
        CliRun since = ferry("vm", "console", "web", "--history", "--since", cut);
        assertEquals(0, since.exit(), since.err());
        assertTrue(!since.out().contains("FERRY-GUEST hb=1 "), since.out());
        assertTrue(since.out().startsWith("FERRY-GUEST hb="), "whole lines: " + since.out());
        CliRun sinceLongAgo = ferry("vm", "console", "web", "--history", "--since", "1d");
        assertTrue(sinceLongAgo.out().startsWith("FERRY-GUEST hb=1 "), sinceLongAgo.out());
    }

    @Test
    @Order(2)
    void everyDaemonServesMetricsWhereClusterJsonSaysAndAnswersHealthChecks() throws Exception {
        ClusterFile f = ClusterFile.read(dir);
        java.util.Map<String, String> endpoints = new java.util.LinkedHashMap<>();
        endpoints.put("coordinator", f.coordinator().metrics());
        for (ClusterFile.Host h : f.hosts()) {
            endpoints.put(h.id(), h.metrics());
        }
        java.net.http.HttpClient http = java.net.http.HttpClient.newHttpClient();
        java.util.Map<String, dev.ferry.metrics.Exposition> scraped = new java.util.HashMap<>();
        for (var e : endpoints.entrySet()) {
            assertTrue(e.getValue() != null && e.getValue().startsWith("127.0.0.1:"), e.toString());
            var r = http.send(
                    java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://" + e.getValue() + "/metrics"))
                            .timeout(Duration.ofSeconds(10))
                            .build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), e.getKey());
            scraped.put(e.getKey(), dev.ferry.metrics.Exposition.parse(r.body()));
        }
        var coordinator = scraped.get("coordinator");
        assertEquals(1.0, coordinator.value("ferry_coordinator_is_leader").orElseThrow());
        assertTrue(coordinator
                        .value("ferry_coordinator_intents_finished_total", "kind", "migrate", "outcome", "done")
                        .orElseThrow()
                >= 1);
        assertTrue(
                coordinator.value("ferry_cluster_vms_running", "host", "host-2").orElseThrow() >= 1);
        assertEquals(
                3.0, coordinator.value("ferry_cluster_hosts", "state", "alive").orElseThrow());
        // web left host-1 for host-2 in the first test: its source counted it.
        var source = scraped.get("host-1");
        assertEquals(
                1.0,
                source.value("ferry_vmi_migration_succeeded_total", "vm", "web").orElseThrow());
        assertEquals(
                1.0,
                source.value("ferry_vmi_migration_memory_verifications_total", "result", "match")
                        .orElseThrow());
        for (ClusterFile.Host h : f.hosts()) {
            var m = scraped.get(h.id());
            assertEquals(1.0, m.value("ferry_agent_info", "host", h.id()).orElseThrow());
            assertEquals(
                    1.0, m.value("ferry_agent_cluster_state", "state", "member").orElseThrow());
            assertEquals(0.0, m.value("ferry_agent_fences_total").orElseThrow());
        }

        CliRun status = ferry("cluster", "status");
        assertEquals(0, status.exit(), status.err());
        for (String at : endpoints.values()) {
            assertTrue(status.out().contains(at), "cluster status shows " + at + ":\n" + status.out());
        }
        JsonNode st = json(ferry("cluster", "status", "--json"));
        assertEquals(
                f.coordinator().metrics(), st.get("metrics").get("coordinator").asText());
        assertEquals(f.host("host-3").metrics(), st.get("metrics").get("host-3").asText());

        // The standard gRPC health check, as the cluster's operator.
        for (String daemon :
                List.of(f.coordinator().endpoint(), f.host("host-1").endpoint())) {
            CliRun health = ferry("health", "--endpoint", daemon);
            assertEquals(0, health.exit(), health.err());
            assertEquals("SERVING", health.out().trim());
        }
        CliRun service =
                ferry("health", "--endpoint", f.host("host-2").endpoint(), "--service", "ferry.agent.v1.AgentControl");
        assertEquals(0, service.exit(), service.err());
        CliRun unknown = ferry("health", "--endpoint", f.host("host-2").endpoint(), "--service", "no.such.Service");
        assertEquals(1, unknown.exit(), unknown.out());
        assertTrue(unknown.err().contains("NOT_FOUND"), unknown.err());
    }

    @Test
    @Order(2)
    void badInputGetsOneClearLineAndANonZeroExit() {
        CliRun unknownVm = ferry("migrate", "nope", "--to", "host-2");
        assertEquals(1, unknownVm.exit());
        assertEquals("ferry: no VM named 'nope' in the cluster", unknownVm.err().trim());

        CliRun unknownHost = ferry("migrate", "web", "--to", "host-9");
        assertEquals(1, unknownHost.exit());
        assertTrue(unknownHost.err().startsWith("ferry: no host 'host-9'"), unknownHost.err());

        CliRun badSize = ferry("vm", "create", "x", "--memory", "12Q");
        assertEquals(2, badSize.exit());
        assertTrue(badSize.err().contains("bad size '12Q'"), badSize.err());
        assertFalse(badSize.err().contains("Exception"), badSize.err());

        CliRun badFlag = ferry("migrate", "web", "--to", "host-1", "--streams", "0x");
        assertEquals(2, badFlag.exit());

        CliRun noConsole = ferry("vm", "console", "nope", "--history");
        assertEquals(1, noConsole.exit());
        assertEquals("ferry: no VM named 'nope' in the cluster", noConsole.err().trim());
        CliRun badTail = ferry("vm", "console", "web", "--tail", "last");
        assertEquals(2, badTail.exit());
        assertTrue(badTail.err().contains("--tail takes a number of lines or 'all'"), badTail.err());
        CliRun badSince = ferry("vm", "console", "web", "--since", "yesterday");
        assertEquals(2, badSince.exit());
        assertTrue(badSince.err().contains("--since takes a time ago"), badSince.err());
        CliRun both = ferry("vm", "console", "web", "--since", "10m", "--tail", "5");
        assertEquals(2, both.exit());
        assertTrue(both.err().contains("give one"), both.err());

        CliRun noCluster =
                CliRun.of("vm", "list", "--cluster", dir.resolve("elsewhere").toString());
        assertEquals(1, noCluster.exit());
        assertTrue(noCluster.err().contains("no cluster at"), noCluster.err());
    }

    /**
     * An operator whose command lost its reply re-runs it with the id the command used: the
     * cluster answers with the first outcome instead of acting again, and refuses the id on
     * another request.
     */
    @Test
    @Order(2)
    void aCommandRetriedWithItsRequestIdRunsOnceAndTheIdServesNoOtherRequest() throws Exception {
        CliRun first = ferry("vm", "create", "once", "--memory", "16M", "--host", "host-1", "--request-id", "op-7");
        assertEquals(0, first.exit(), first.err());
        CliRun again = ferry("vm", "create", "once", "--memory", "16M", "--host", "host-1", "--request-id", "op-7");
        assertEquals(0, again.exit(), "the retry got the first outcome, not 'already exists': " + again.err());
        assertEquals(first.out(), again.out());
        assertEquals(1, json(ferry("vm", "show", "once", "--json")).get("epoch").asInt());

        CliRun reused = ferry("vm", "stop", "once", "--request-id", "op-7");
        assertEquals(2, reused.exit(), reused.err());
        assertTrue(
                reused.err().contains("request id op-7 was already used for another request (create of once)"),
                reused.err());
        assertEquals(
                "running",
                json(ferry("vm", "show", "once", "--json")).get("state").asText());

        CliRun bad = ferry("vm", "stop", "once", "--request-id", "no spaces");
        assertEquals(2, bad.exit());
        assertTrue(bad.err().startsWith("ferry: --request-id: request id must be"), bad.err());
        assertEquals(0, ferry("vm", "delete", "once").exit());
    }

    @Test
    @Order(3)
    void killingTheDestinationAgentMidMigrationLeavesTheVmRunningOnTheSource() throws Exception {
        assertEquals(
                0,
                ferry("vm", "create", "db", "--memory", "256M", "--dirty-rate", "4M", "--host", "host-1")
                        .exit());
        ClusterFile f = ClusterFile.read(dir);
        ProcessHandle destination = LocalCluster.alive(f.host("host-3")).orElseThrow();
        // 256 MiB at 32 MiB/s: about eight seconds of round 0, plenty of time to kill the destination.
        CompletableFuture<CliRun> migration = CompletableFuture.supplyAsync(
                () -> ferry("migrate", "db", "--to", "host-3", "--max-bandwidth", "32M", "--json"));
        // Mid-stream: pages are arriving on host-3 (its copy's first data page, after the sim guest's
        // 64-page table, is no longer zero; round 0 takes seconds from there).
        Path destinationRam = Path.of(f.host("host-3").ramDir());
        Timing.await("pages arriving on host-3", Duration.ofSeconds(30), () -> {
            try (var files = Files.list(destinationRam)) {
                for (Path p : files.filter(x -> x.toString().endsWith(".ram")).toList()) {
                    try (var ch = java.nio.channels.FileChannel.open(p)) {
                        java.nio.ByteBuffer page = java.nio.ByteBuffer.allocate(4096);
                        ch.read(page, 64L * 4096);
                        for (int i = 0; i < page.position(); i++) {
                            if (page.get(i) != 0) {
                                return true;
                            }
                        }
                    }
                }
                return false;
            } catch (java.io.IOException e) {
                return false;
            }
        });
        destination.destroyForcibly();
        CliRun r = migration.get(Timing.seconds(120).toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
        assertEquals(1, r.exit(), r.out());
        JsonNode m = json(r);
        assertEquals("failed", m.get("status").asText());
        assertTrue(
                m.get("error").asText().contains("destination")
                        || m.get("error").asText().contains("broke"),
                m.get("error").asText());

        JsonNode db = json(ferry("vm", "show", "db", "--json"));
        assertEquals("host-1", db.get("host").asText());
        assertEquals("running", db.get("state").asText());
        long beat = db.get("heartbeat").asLong();
        Timing.await("the VM keeps running on host-1", Duration.ofSeconds(10), () -> {
            try {
                return json(ferry("vm", "show", "db", "--json"))
                                .get("heartbeat")
                                .asLong()
                        > beat + 10;
            } catch (Exception e) {
                return false;
            }
        });

        CliRun unreachable = ferry("migrate", "db", "--to", "host-3");
        assertEquals(1, unreachable.exit());
        assertTrue(
                unreachable.err().contains("unreachable") || unreachable.out().contains("unreachable"),
                unreachable.err() + unreachable.out());
        Timing.await("host-3's session to expire", Duration.ofSeconds(30), () -> {
            try {
                for (JsonNode h : json(ferry("host", "list", "--json")).get("hosts")) {
                    if (h.get("id").asText().equals("host-3")) {
                        return !h.get("alive").asBoolean();
                    }
                }
                return false;
            } catch (Exception e) {
                return false;
            }
        });
        CliRun list = ferry("vm", "list");
        assertEquals(0, list.exit());
        assertTrue(list.err().contains("host-3"), "an unreachable host is named: " + list.err());
    }

    @Test
    @Order(4)
    void drainMovesAHostsVmsOffLiveAndActivateTakesItBack() throws Exception {
        assertEquals(
                0,
                ferry("vm", "create", "app", "--memory", "64M", "--dirty-rate", "4M", "--host", "host-1")
                        .exit());
        CliRun drained = ferry("host", "drain", "host-1", "--wait", "--parallel", "2", "--json");
        assertEquals(0, drained.exit(), drained.err() + drained.out());
        JsonNode d = json(drained);
        assertEquals("completed", d.get("status").asText());
        assertEquals(2, d.get("moved").size(), d.toString()); // db and app
        assertEquals(0, d.get("failed").size());
        for (JsonNode m : d.get("moved")) {
            assertTrue(m.get("live").asBoolean());
            assertEquals("host-2", m.get("to").asText(), "host-3 is dead, host-1 drained: " + m);
        }
        JsonNode hosts = json(ferry("host", "list", "--json")).get("hosts");
        JsonNode h1 = null;
        for (JsonNode h : hosts) {
            if (h.get("id").asText().equals("host-1")) {
                h1 = h;
            }
        }
        assertTrue(
                h1 != null
                        && h1.get("alive").asBoolean()
                        && h1.get("maintenance").asBoolean()
                        && h1.get("vms").isEmpty(),
                String.valueOf(h1));

        CliRun noRoom = ferry("vm", "create", "late", "--memory", "16M", "--host", "host-1");
        assertEquals(1, noRoom.exit());
        assertTrue(noRoom.err().contains("host-1 is in maintenance"), noRoom.err());
        assertEquals(0, ferry("host", "activate", "host-1").exit());
        assertEquals(
                0,
                ferry("vm", "create", "late", "--memory", "16M", "--host", "host-1")
                        .exit());

        // Any cluster command also works with only the ZooKeeper connect string (and a certificate).
        ClusterFile f = ClusterFile.read(dir);
        CliRun status = withOperator(f, "cluster", "status", "--zk", f.zookeeper(), "--json");
        assertEquals(0, status.exit(), status.err());
        JsonNode st = json(status);
        assertEquals(f.coordinator().endpoint(), st.get("leader").asText());
        assertEquals(2, st.get("hostsAlive").asInt());
        CliRun vms = withOperator(f, "vm", "list", "--zk", f.zookeeper(), "--json");
        assertEquals(0, vms.exit(), vms.err());
        assertEquals(4, json(vms).get("vms").size(), vms.out()); // web, db, app, late
    }
}
