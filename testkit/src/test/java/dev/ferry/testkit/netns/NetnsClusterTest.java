package dev.ferry.testkit.netns;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.testing.Timing;
import java.nio.file.Files;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A cluster of real hosts in network namespaces: a three-server ZooKeeper ensemble, two
 * coordinator replicas and two agents, each its own process with its own address, driven by the
 * CLI from a control namespace as an operator would.
 */
class NetnsClusterTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    static void requireNetns() {
        String why = NetnsCluster.unavailableReason();
        boolean required = Boolean.getBoolean("ferry.qemu.required") || System.getenv("CI") != null;
        if (why != null && required) {
            throw new AssertionError(why + ", and these tests are required here");
        }
        assumeTrue(why == null, why);
    }

    private static JsonNode vm(NetnsCluster c, String name) throws Exception {
        JsonNode list = JSON.readTree(c.cliOk("vm", "list", "--json"));
        for (JsonNode v : list.get("vms")) {
            if (v.get("name").asText().equals(name)) {
                return v;
            }
        }
        throw new AssertionError("no VM " + name + " in " + list);
    }

    @Test
    void simVmMovesBetweenHostsAndSurvivesTheLossOfOneZooKeeperServer() throws Exception {
        requireNetns();
        NetnsCluster c = NetnsCluster.builder()
                .zookeepers(3)
                .coordinators(2)
                .agent(AgentSpec.sim("host-1"))
                .agent(AgentSpec.sim("host-2").withWildcardListen())
                .sessionTimeout(Timing.seconds(4))
                .startTimeout(Timing.seconds(120))
                .start();
        try (c) {
            // Each daemon is a process of its own, in its own namespace, at its own address.
            assertEquals(7, c.daemons().size());
            for (Daemon d : c.daemons()) {
                assertTrue(d.isAlive(), d + " is not running");
                assertTrue(c.pidsOn(d.host()).contains(d.pid()), d + " is not in its namespace");
            }
            // host-2 listens on 0.0.0.0 and advertises its address: what it registered is dialable.
            String hosts = c.cliOk("host", "list", "--json");
            assertFalse(hosts.contains("0.0.0.0"), hosts);
            assertTrue(hosts.contains(c.agent("host-1").endpoint()), hosts);
            assertTrue(hosts.contains(c.agent("host-2").endpoint()), hosts);

            c.cliOk(
                    "vm",
                    "create",
                    "web",
                    "--memory",
                    "64M",
                    "--dirty-rate",
                    "1M",
                    "--working-set",
                    "16M",
                    "--host",
                    "host-1");
            assertEquals("host-1", vm(c, "web").get("host").asText());
            JsonNode m = JSON.readTree(c.cliOk("migrate", "web", "--to", "host-2", "--verify", "--json"));
            assertEquals("completed", m.get("status").asText(), m.toString());
            JsonNode after = vm(c, "web");
            assertEquals("host-2", after.get("host").asText());
            assertEquals(2, after.get("epoch").asInt(), after.toString());

            // A third agent on the wildcard address without --advertise is refused before it registers anything.
            CommandResult refused = c.cli(
                    "agent",
                    "--host-id",
                    "host-9",
                    "--listen",
                    "0.0.0.0:7071",
                    "--data-dir",
                    c.root().resolve("host-9").toString(),
                    "--zk",
                    c.zkConnect(),
                    "--cluster-name",
                    c.clusterName());
            assertEquals(2, refused.exitCode(), refused.describe());
            assertTrue(refused.stderr().contains("--advertise"), refused.describe());

            // One of three ZooKeeper servers dies: the other two are a quorum, and the cluster works on.
            int leader = c.zkLeader().orElseThrow();
            c.zookeeper(leader).kill();
            c.awaitZooKeeperQuorum(Timing.seconds(30));
            JsonNode back = JSON.readTree(c.cliOk("migrate", "web", "--to", "host-1", "--json"));
            assertEquals("completed", back.get("status").asText(), back.toString());
            assertEquals("host-1", vm(c, "web").get("host").asText());
            c.zookeeper(leader).restart(Timing.seconds(30));
            c.awaitZooKeeperQuorum(Timing.seconds(30));
        }
        // close removes everything: no namespace, no process, no file.
        assertFalse(c.anyNamespaceLeft(), "namespaces of " + c.id() + " left");
        for (Daemon d : c.daemons()) {
            assertFalse(d.isAlive(), d + " still running");
        }
        assertFalse(Files.exists(c.root()), c.root() + " left");
        assertEquals(NetnsCluster.State.CLOSED, c.state());
        c.close(); // idempotent
        assertTrue(StaleNamespaces.namespacesOf(c.id()).isEmpty());
        assertEquals(List.of(), StaleNamespaces.namespacesOf(c.id()));
    }

    /**
     * A ZooKeeper server of an ensemble (its own JVM, QuorumPeerMain with the zoo.cfg the kit
     * writes) checked only the CA: an agent whose certificate was revoked kept its session and its
     * role's ACLs. Now the server reads the cluster's revocation list: after `ferry pki revoke`,
     * with no restart, it closes the agent's open connection and refuses its reconnections, each
     * with a log line naming the revocation, while the coordinator and the operator carry on.
     */
    @Test
    void aSeparatelyStartedZooKeeperServerCutsOffARevokedAgentWithoutARestart() throws Exception {
        requireNetns();
        NetnsCluster c = NetnsCluster.builder()
                .zookeepers(1)
                .coordinators(1)
                .agent(AgentSpec.sim("host-1"))
                .sessionTimeout(Timing.seconds(4))
                .startTimeout(Timing.seconds(120))
                .start();
        try (c) {
            assertTrue(c.cliOk("host", "list", "--json").contains("host-1"));
            // What `ferry pki revoke host-1 --dir PKI` does (the kit's CLI runs append cluster flags).
            java.nio.file.Path pki = c.root().resolve("pki");
            dev.ferry.pki.CertificateAuthority.load(pki)
                    .revoke(
                            List.of(dev.ferry.pki.Pem.readCertificate(
                                    pki.resolve("a").resolve("host-1.crt"))),
                            java.time.Clock.systemUTC());

            String who = "the certificate of ferry://" + c.clusterName() + "/agent/host-1 (serial ";
            String closed = awaitLogLine(c.zookeeper(1), "closing the ZooKeeper connection of session", who);
            assertTrue(closed.contains("was revoked at"), closed);
            // The agent's client reconnects by itself, and is refused each time.
            awaitLogLine(c.zookeeper(1), "refused a ZooKeeper client", who);

            assertEquals("standalone", c.zkMode(1), "the operator still reaches the server");
            c.cliOk("vm", "list"); // the coordinator still serves
        }
    }

    /** Waits (up to 30 s) for a line of {@code d}'s log containing every one of {@code parts}. */
    private static String awaitLogLine(Daemon d, String... parts) throws Exception {
        long deadline = System.nanoTime() + Timing.seconds(30).toNanos();
        while (true) {
            for (String line : Files.readAllLines(d.logFile())) {
                if (java.util.Arrays.stream(parts).allMatch(line::contains)) {
                    return line;
                }
            }
            assertTrue(System.nanoTime() < deadline, d + " logged no line with " + List.of(parts) + ":\n" + d.tail(30));
            Thread.sleep(250);
        }
    }
}
