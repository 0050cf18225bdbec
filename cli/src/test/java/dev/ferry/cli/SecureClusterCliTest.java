package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.cli.cluster.LocalPki;
import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.cluster.store.ZkSecurity;
import dev.ferry.pki.Credentials;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.ACL;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A local cluster is secure by default: `cluster up` makes a CA and certificates, every part talks
 * mutual TLS, and whoever lacks a certificate of the cluster's CA, or has the wrong role, is
 * refused. The attacks are the ones issue 10 tried against a plaintext cluster.
 */
class SecureClusterCliTest {
    @TempDir
    static Path tmp;

    static Path dir;
    static ClusterFile cluster;

    @BeforeAll
    static void up() {
        dir = tmp.resolve("cluster");
        CliRun r = CliRun.of("cluster", "up", "--dir", dir.toString(), "--hosts", "2");
        assertEquals(0, r.exit(), r.err());
        assertTrue(r.out().contains("mutual TLS"), r.out());
        cluster = ClusterFile.read(dir);
        CliRun created = ferry("vm", "create", "web", "--memory", "64M", "--host", "host-1");
        assertEquals(0, created.exit(), created.err());
    }

    @AfterAll
    static void down() {
        if (Files.exists(dir.resolve("cluster.json"))) {
            assertEquals(
                    0, CliRun.of("cluster", "down", "--dir", dir.toString()).exit());
        }
    }

    private static CliRun ferry(String... args) {
        List<String> all = new ArrayList<>(List.of(args));
        all.addAll(List.of("--cluster", dir.toString()));
        return CliRun.of(all.toArray(String[]::new));
    }

    /** The flags of {@code name}'s certificate in {@code certDir}, honouring the cluster's revocation list. */
    private static List<String> as(Path certDir, String name) {
        return dev.ferry.pki.CredentialFiles.in(
                        certDir, name, Path.of(cluster.pki()).resolve(dev.ferry.pki.RevocationList.FILE))
                .flags();
    }

    /** Whether {@code who} gets a session from the cluster's ZooKeeper within a few seconds. */
    private static boolean zooKeeperSession(Credentials who) {
        try (CuratorFramework c = ZkClients.of(
                        cluster.zookeeper(), cluster.clusterName(), Duration.ofSeconds(10), ZkSecurity.x509(who))
                .singleAttempt()) {
            c.start();
            return c.blockUntilConnected(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    private static CliRun zk(List<String> who, String... args) {
        List<String> all = new ArrayList<>(List.of(args));
        all.addAll(List.of("--zk", cluster.zookeeper()));
        all.addAll(who);
        return CliRun.of(all.toArray(String[]::new));
    }

    @Test
    void everyPartHasACertificateAndKeysAreOwnerOnly() throws Exception {
        assertNotNull(cluster.pki(), "cluster.json records the cluster's certificates");
        Path pki = Path.of(cluster.pki());
        for (Path key : List.of(
                pki.resolve("ca.key"),
                pki.resolve("agents/host-1.key"),
                pki.resolve("coordinator/coordinator-1.key"),
                pki.resolve("operator/operator.key"))) {
            assertEquals(
                    "rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(key)), key.toString());
        }
        // The cluster's own commands use the operator certificate without being told.
        CliRun list = ferry("vm", "list");
        assertEquals(0, list.exit(), list.err());
        assertTrue(list.out().contains("web"), list.out());
    }

    @Test
    void aClientWithoutACertificateGetsNothing() {
        CliRun plain = zk(List.of("--insecure"), "vm", "list");
        assertNotEquals(0, plain.exit(), plain.out());
        CliRun none = zk(List.of(), "vm", "list");
        assertEquals(2, none.exit(), none.err());
        assertTrue(none.err().contains("--insecure"), none.err());
    }

    @Test
    void anAnonymousZooKeeperClientCannotReadOrWriteTheClustersTree() throws Exception {
        // The attack of issue 10: a plain ZooKeeper client writing into /ferry/NAME.
        try (CuratorFramework anonymous = ZkClients.of(
                        cluster.zookeeper(), cluster.clusterName(), Duration.ofSeconds(4))
                .singleAttempt()) {
            anonymous.start();
            assertFalse(anonymous.blockUntilConnected(4, TimeUnit.SECONDS), "the embedded ZooKeeper serves TLS only");
            assertThrows(Exception.class, () -> anonymous.getChildren().forPath(ClusterPaths.VMS));
            assertThrows(Exception.class, () -> anonymous.create().forPath("/intruder", new byte[0]));
        }
        // The cluster's own operator, over TLS: reads, but writes only through the coordinator.
        try (CuratorFramework operator = ZkClients.of(
                        cluster.zookeeper(),
                        cluster.clusterName(),
                        Duration.ofSeconds(10),
                        ZkSecurity.x509(LocalPki.operator(Path.of(cluster.pki()))))
                .singleAttempt()) {
            operator.start();
            assertTrue(operator.blockUntilConnected(10, TimeUnit.SECONDS));
            assertTrue(operator.getChildren().forPath(ClusterPaths.VMS).contains("web"));
            assertThrows(
                    KeeperException.NoAuthException.class,
                    () -> operator.create().forPath("/intruder", new byte[0]));
            assertThrows(
                    KeeperException.NoAuthException.class,
                    () -> operator.setData().forPath(ClusterPaths.vm("web"), new byte[0]));
            for (ACL a : operator.getACL().forPath("/")) {
                assertNotEquals("world", a.getId().getScheme(), "the namespace grants nothing to anyone");
            }
        }
    }

    /**
     * A coordinator joining a cluster whose tree has a node with open ACLs (left by an --insecure
     * run, or created by someone before the cluster first started) refuses to start and names the
     * node; the audit's repair (what --repair-acls runs) makes the tree the cluster's again.
     */
    @Test
    void aCoordinatorRefusesToStartOnATreeWithOpenAcls() throws Exception {
        Path c = Path.of(cluster.pki()).resolve("coordinator");
        Credentials coordinator = dev.ferry.pki.CredentialFiles.in(
                        c, LocalPki.COORDINATOR, Path.of(cluster.pki()).resolve(dev.ferry.pki.RevocationList.FILE))
                .load(java.time.Clock.systemUTC());
        try (CuratorFramework zk = ZkClients.of(
                        cluster.zookeeper(),
                        cluster.clusterName(),
                        Duration.ofSeconds(10),
                        ZkSecurity.x509(coordinator))
                .singleAttempt()) {
            zk.start();
            assertTrue(zk.blockUntilConnected(10, TimeUnit.SECONDS));
            zk.setACL()
                    .withACL(org.apache.zookeeper.ZooDefs.Ids.OPEN_ACL_UNSAFE)
                    .forPath(ClusterPaths.MAINTENANCE);
            try {
                List<String> args = new ArrayList<>(List.of(
                        "coordinator",
                        "--zk",
                        cluster.zookeeper(),
                        "--cluster-name",
                        cluster.clusterName(),
                        "--listen",
                        "127.0.0.1:0",
                        "--single-machine"));
                args.addAll(as(c, LocalPki.COORDINATOR));
                CliRun r = CliRun.of(args.toArray(String[]::new));
                assertNotEquals(0, r.exit(), r.out());
                assertTrue(
                        r.err().contains("/ferry/" + cluster.clusterName() + "/maintenance has [world:anyone=rwcda]"),
                        r.err());
                assertTrue(r.err().contains("--repair-acls"), r.err());
            } finally {
                dev.ferry.cluster.store.AclAudit.repair(zk, new dev.ferry.cluster.store.ZkAcls(cluster.clusterName()));
            }
            assertEquals(
                    List.of(),
                    dev.ferry.cluster.store.AclAudit.audit(
                            zk, new dev.ferry.cluster.store.ZkAcls(cluster.clusterName())));
        }
    }

    @Test
    void aCertificateFromAnotherCaIsRefusedThoughItClaimsTheSameClusterAndRole() {
        Path evil = tmp.resolve("evil");
        assertEquals(
                0,
                CliRun.of("pki", "init", "--dir", evil.toString(), "--cluster-name", "default")
                        .exit());
        CliRun issued = CliRun.of("pki", "issue", "operator", "--role", "operator", "--dir", evil.toString());
        assertEquals(0, issued.exit(), issued.err());
        CliRun r = zk(as(evil, "operator"), "vm", "stop", "web");
        assertNotEquals(0, r.exit(), r.out());
        CliRun still = ferry("vm", "show", "web", "--json");
        assertTrue(still.out().contains("\"running\""), still.out());
    }

    @Test
    void aViewerMayListButNotStop() {
        Path people = tmp.resolve("people");
        CliRun issued = CliRun.of(
                "pki", "issue", "bob", "--role", "viewer", "--dir", cluster.pki(), "--out", people.toString());
        assertEquals(0, issued.exit(), issued.err());
        CliRun list = zk(as(people, "bob"), "vm", "list");
        assertEquals(0, list.exit(), list.err());
        assertTrue(list.out().contains("web"), list.out());
        CliRun stop = zk(as(people, "bob"), "vm", "stop", "web");
        assertNotEquals(0, stop.exit(), stop.out());
        assertTrue(stop.err().contains("viewer"), stop.err());
        CliRun still = ferry("vm", "show", "web", "--json");
        assertTrue(still.out().contains("\"running\""), still.out());
    }

    @Test
    void aViewerMayFollowAConsoleButNotWriteToIt() {
        Path people = tmp.resolve("watchers");
        CliRun issued = CliRun.of(
                "pki", "issue", "carol", "--role", "viewer", "--dir", cluster.pki(), "--out", people.toString());
        assertEquals(0, issued.exit(), issued.err());
        Timing.await(
                "a heartbeat line on web's console",
                Duration.ofSeconds(30),
                () -> ferry("vm", "console", "web", "--history", "--tail", "all")
                        .out()
                        .contains("FERRY-GUEST hb="));
        CliRun read = zk(as(people, "carol"), "vm", "console", "web", "--history", "--tail", "1");
        assertEquals(0, read.exit(), read.err());
        assertTrue(read.out().contains("FERRY-GUEST hb="), read.out());
        java.io.InputStream stdin = System.in;
        try {
            System.setIn(new java.io.ByteArrayInputStream("reboot\n".getBytes(StandardCharsets.US_ASCII)));
            CliRun write = zk(as(people, "carol"), "vm", "console", "web");
            assertEquals(1, write.exit(), write.out());
            assertTrue(write.err().contains("only operators may write to a console"), write.err());
        } finally {
            System.setIn(stdin);
        }
    }

    @Test
    void aRevokedOperatorIsRefusedByTheRunningClusterWithoutARestart() {
        Path people = tmp.resolve("leaving");
        CliRun issued = CliRun.of(
                "pki", "issue", "mallory", "--role", "operator", "--dir", cluster.pki(), "--out", people.toString());
        assertEquals(0, issued.exit(), issued.err());
        assertEquals(0, zk(as(people, "mallory"), "vm", "list").exit());
        Credentials mallory = dev.ferry.pki.CredentialFiles.in(
                        people, "mallory", Path.of(cluster.pki()).resolve(dev.ferry.pki.RevocationList.FILE))
                .load(java.time.Clock.systemUTC());
        assertTrue(zooKeeperSession(mallory), "before: the embedded ZooKeeper admits mallory");

        CliRun revoked = CliRun.of("pki", "revoke", "mallory", "--dir", cluster.pki());
        assertEquals(0, revoked.exit(), revoked.err());
        assertTrue(revoked.out().contains("revoked ferry://default/operator/mallory (serial "), revoked.out());
        assertTrue(revoked.out().contains("revocation list #1 (1 revoked"), revoked.out());
        CliRun list = CliRun.of("pki", "revoke", "--list", "--dir", cluster.pki());
        assertTrue(list.out().contains("1 revoked"), list.out());

        // The daemons were started with --crl pki/crl.pem and read it at the next handshake.
        CliRun stop = zk(as(people, "mallory"), "vm", "stop", "web");
        assertNotEquals(0, stop.exit(), stop.out());
        // Told why, not only that ZooKeeper could not be reached (all its client ever sees).
        assertTrue(
                stop.err()
                        .contains(
                                "then closed the connection: it refuses this certificate (ferry://default/operator/mallory)"),
                stop.err());
        CliRun still = ferry("vm", "show", "web", "--json");
        assertTrue(still.out().contains("\"running\""), still.out());
        assertEquals(0, ferry("vm", "list").exit(), "the cluster's own operator is unaffected");
        // The embedded ZooKeeper (in the coordinator, started with the same --crl) refuses mallory
        // too, where its TLS used to check only the CA; the cluster's operator still gets in.
        assertFalse(zooKeeperSession(mallory), "after: no ZooKeeper session for a revoked certificate");
        assertTrue(zooKeeperSession(LocalPki.operator(Path.of(cluster.pki()))));

        CliRun unknown = CliRun.of("pki", "revoke", "nobody", "--dir", cluster.pki());
        assertEquals(1, unknown.exit(), unknown.out());
        assertTrue(unknown.err().contains("has no record of a certificate for nobody"), unknown.err());
    }

    @Test
    void anOperatorCannotOrderAClusterAgentDirectly() {
        // In a cluster only the coordinator orders agents (every order is then an intent with an
        // epoch); an operator certificate may look at an agent but not stop its VMs behind the
        // cluster's back.
        ClusterFile.Host h1 = cluster.host("host-1");
        try (AgentClient a = LocalCluster.client(cluster, h1, Duration.ofSeconds(20))) {
            assertTrue(a.listVms().stream().anyMatch(v -> v.getSpec().getName().equals("web")));
            AgentCallException x = assertThrows(AgentCallException.class, () -> a.stopVm("web"));
            assertTrue(x.getMessage().contains("coordinator"), x.getMessage());
        }
        // And plaintext gets no answer at all from an agent.
        try (AgentClient a = new AgentClient(
                Transport.plaintext(), "host-1", Endpoint.parse(h1.endpoint()), Duration.ofSeconds(20))) {
            assertThrows(AgentCallException.class, a::listVms);
        }
    }

    @Test
    void aDaemonWithoutTlsFilesOrInsecureRefusesToStart() {
        CliRun r = CliRun.of(
                "agent",
                "--host-id",
                "host-9",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                tmp.resolve("h9").toString());
        assertEquals(2, r.exit(), r.err());
        assertTrue(r.err().contains("--cert") && r.err().contains("--insecure"), r.err());
        Path agents = Path.of(cluster.pki()).resolve("agents");
        CliRun wrongName = CliRun.of(
                "agent",
                "--host-id",
                "host-9",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                tmp.resolve("h9").toString(),
                "--cert",
                agents.resolve("host-1.crt").toString(),
                "--key",
                agents.resolve("host-1.key").toString(),
                "--ca",
                agents.resolve("ca.crt").toString());
        assertEquals(2, wrongName.exit(), wrongName.err());
        assertTrue(wrongName.err().contains("ferry://default/agent/host-1"), wrongName.err());
    }

    /**
     * `cluster status` warns about a certificate that expires within 30 days, naming its holder and
     * what to do, and about no other: host-2's agent is restarted with a 10-day certificate (the
     * one it reports in its registration is what it loaded), the coordinator, host-1, the operator
     * and the CA keep their year-long (or ten-year) ones.
     */
    @Test
    void clusterStatusWarnsAboutTheAgentCertificateThatExpiresWithinThirtyDaysAndNoOther() throws Exception {
        Path pki = Path.of(cluster.pki());
        Path shortLived = tmp.resolve("short-lived");
        CliRun issued = CliRun.of(
                "pki",
                "issue",
                "host-2",
                "--role",
                "agent",
                "--dir",
                pki.toString(),
                "--out",
                shortLived.toString(),
                "--valid-for",
                "10d");
        assertEquals(0, issued.exit(), issued.err());
        // Where the local cluster's host-2 reads its files; written in place, so the key stays 0600.
        for (String f : List.of("host-2.crt", "host-2.key")) {
            Files.write(pki.resolve("agents").resolve(f), Files.readAllBytes(shortLived.resolve(f)));
        }
        ProcessHandle old = LocalCluster.alive(cluster.host("host-2")).orElseThrow();
        old.destroy();
        old.onExit().get(30, TimeUnit.SECONDS);
        cluster = LocalCluster.restartAgent(dir, "host-2", Duration.ofSeconds(60));
        long soon = System.currentTimeMillis() + Duration.ofDays(30).toMillis();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        JsonNode status;
        while (true) {
            CliRun r = ferry("cluster", "status", "--json");
            assertEquals(0, r.exit(), r.err());
            status = Json.MAPPER.readTree(r.out());
            JsonNode host2 = null;
            for (JsonNode h : status.get("hosts")) {
                if (h.get("id").asText().equals("host-2") && h.get("alive").asBoolean()) {
                    host2 = h;
                }
            }
            if (host2 != null
                    && host2.has("certificateNotAfterMs")
                    && host2.get("certificateNotAfterMs").asLong() < soon) {
                break;
            }
            assertTrue(System.nanoTime() < deadline, "host-2 never registered its new certificate: " + r.out());
            Thread.sleep(250);
        }
        List<String> warnings = new ArrayList<>();
        status.get("certificateWarnings").forEach(w -> warnings.add(w.asText()));
        assertEquals(1, warnings.size(), warnings.toString());
        assertTrue(
                warnings.getFirst().startsWith("WARNING: the certificate of agent host-2 expires"),
                warnings.toString());
        assertTrue(warnings.getFirst().contains("ferry pki issue host-2 --role agent"), warnings.toString());
        // Every holder is listed with its expiry: the CA, the operator, the coordinator, both hosts.
        List<String> holders = new ArrayList<>();
        for (JsonNode c : status.get("certificates")) {
            assertTrue(c.has("notAfterMs"), c.toString());
            holders.add(c.get("role").asText() + ":" + c.path("name").asText());
            assertEquals(
                    c.get("role").asText().equals("agent")
                            && c.get("name").asText().equals("host-2"),
                    c.has("warning"),
                    c.toString());
        }
        assertTrue(
                holders.containsAll(List.of(
                        "ca:",
                        "operator:operator",
                        "coordinator:" + LocalPki.COORDINATOR,
                        "agent:host-1",
                        "agent:host-2")),
                holders.toString());

        CliRun text = ferry("cluster", "status");
        assertEquals(0, text.exit(), text.err());
        List<String> lines =
                text.out().lines().filter(l -> l.startsWith("WARNING")).toList();
        assertEquals(1, lines.size(), text.out());
        assertTrue(lines.getFirst().contains("agent host-2") && lines.getFirst().contains("restart"), text.out());
        assertTrue(text.out().contains("agent host-1"), text.out());
    }
}
