package dev.ferry.cluster.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.pki.CertificateAuthority;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.RevocationList;
import dev.ferry.pki.Role;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.ZooDefs.Perms;
import org.apache.zookeeper.client.ZKClientConfig;
import org.apache.zookeeper.common.ClientX509Util;
import org.apache.zookeeper.data.ACL;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A secure embedded ZooKeeper, real clients: who can connect, and what each role may do to the
 * nodes Ferry creates.
 */
class SecureZooKeeperTest {
    private static final String CLUSTER = "sec";
    private static final Duration SESSION = Duration.ofSeconds(10);
    private static final Clock UTC = Clock.systemUTC();

    @TempDir
    static Path dir;

    static CertificateAuthority ca;
    static EmbeddedZooKeeper server;
    static Credentials coordinator;
    static Credentials agent;
    static Credentials operator;
    static Credentials viewer;
    static Credentials foreign;

    @BeforeAll
    static void start() throws Exception {
        ca = CertificateAuthority.create(dir.resolve("ca"), CLUSTER, Duration.ofDays(30), UTC);
        Credentials zk = serverCredentials(ca, dir.resolve("z"));
        coordinator = issue(ca, "coordinator-1", Role.COORDINATOR);
        agent = issue(ca, "host-1", Role.AGENT);
        operator = issue(ca, "alice", Role.OPERATOR);
        viewer = issue(ca, "bob", Role.VIEWER);
        // Another CA naming the same cluster: its certificates prove nothing here.
        CertificateAuthority other =
                CertificateAuthority.create(dir.resolve("other"), CLUSTER, Duration.ofDays(30), UTC);
        foreign = other.issue(
                "coordinator-1", Role.COORDINATOR, Duration.ofDays(1), List.of(), List.of(), dir.resolve("f"), UTC);
        // The server honours the list where `ferry pki revoke` writes it (the CA's directory), as
        // `cluster up` starts its daemons with --crl DIR/pki/crl.pem. It does not exist yet.
        zk = zk.withRevocationList(dir.resolve("ca").resolve(RevocationList.FILE));
        server = new EmbeddedZooKeeper(dir.resolve("data"), new InetSocketAddress("127.0.0.1", 0), ZkSecurity.x509(zk))
                .start();
        try (CuratorFramework c = client(coordinator)) {
            new ClusterStore(c).ensureLayout();
            // In a transaction, as the coordinator creates VM records (Curator hands the provider
            // another form of path there).
            c.transaction().forOperations(c.transactionOp().create().forPath(ClusterPaths.vm("vm-1"), new byte[] {1}));
            c.create().forPath(ClusterPaths.TERM, new byte[] {1});
            // As a latch node, but outliving this client.
            c.create().withMode(CreateMode.PERSISTENT_SEQUENTIAL).forPath(ClusterPaths.LEADER + "/latch-", new byte[0]);
        }
    }

    @AfterAll
    static void stop() {
        if (server != null) {
            server.close();
        }
    }

    /** A server's credentials: its certificate names 127.0.0.1, the address its clients connect to. */
    static Credentials serverCredentials(CertificateAuthority ca, Path files) throws UnknownHostException {
        return ca.issue(
                "zk-1",
                Role.ZOOKEEPER,
                Duration.ofDays(1),
                List.of(),
                List.of(InetAddress.getByName("127.0.0.1")),
                files,
                UTC);
    }

    private static Credentials issue(CertificateAuthority ca, String name, Role role) {
        return ca.issue(name, role, Duration.ofDays(1), List.of(), List.of(), dir.resolve(role.token()), UTC);
    }

    private static CuratorFramework client(Credentials c) throws InterruptedException {
        CuratorFramework f = ZkClients.of(server.connectString(), CLUSTER, SESSION, ZkSecurity.x509(c))
                .singleAttempt();
        f.start();
        assertTrue(f.blockUntilConnected(10, TimeUnit.SECONDS), "a cluster identity connects");
        return f;
    }

    /** Whether a client with {@code config} gets a ZooKeeper session within a few seconds. */
    private static boolean connects(ZKClientConfig config) throws InterruptedException {
        var b = CuratorFrameworkFactory.builder()
                .connectString(server.connectString())
                .sessionTimeoutMs(4000)
                .connectionTimeoutMs(2000)
                .retryPolicy(new RetryNTimes(0, 0));
        if (config != null) {
            b.zkClientConfig(config);
        }
        try (CuratorFramework f = b.build()) {
            f.start();
            return f.blockUntilConnected(4, TimeUnit.SECONDS);
        }
    }

    @Test
    void anAnonymousPlaintextClientCannotEvenConnect() throws Exception {
        assertFalse(connects(null), "no plaintext port: a plain client gets no session");
    }

    @Test
    void aTlsClientWithoutACertificateIsRefused() throws Exception {
        ZKClientConfig c = new ZKClientConfig();
        c.setProperty(ZKClientConfig.ZOOKEEPER_CLIENT_CNXN_SOCKET, "org.apache.zookeeper.ClientCnxnSocketNetty");
        c.setProperty(ZKClientConfig.SECURE_CLIENT, "true");
        try (ClientX509Util x = new ClientX509Util()) {
            // Explicitly none: a new config copies the zookeeper.ssl.* system properties, which the
            // embedded server in this JVM has set to its own key.
            c.setProperty(x.getSslKeystoreLocationProperty(), "");
            c.setProperty(x.getSslTruststoreLocationProperty(), coordinator.ca().toString());
            c.setProperty(x.getSslTruststoreTypeProperty(), "PEM");
            c.setProperty(x.getSslHostnameVerificationEnabledProperty(), "false");
        }
        assertFalse(connects(c));
    }

    @Test
    void aCertificateOfAnotherCaIsRefused() throws Exception {
        // Its own truststore is the foreign CA, so it would not trust the server either; trust the
        // right CA to show that the server refuses it.
        ZKClientConfig c = ZkTls.clientConfig(foreign);
        try (ClientX509Util x = new ClientX509Util()) {
            c.setProperty(x.getSslTruststoreLocationProperty(), coordinator.ca().toString());
        }
        assertFalse(connects(c));
    }

    @Test
    void nodesFerryCreatesGrantNothingToTheWorldAndEachRoleItsShare() throws Exception {
        try (CuratorFramework c = client(viewer)) {
            for (String p : List.of("", ClusterPaths.HOSTS, ClusterPaths.vm("vm-1"), ClusterPaths.TERM)) {
                List<ACL> acl = c.getACL().forPath(p.isEmpty() ? "/" : p);
                for (ACL a : acl) {
                    assertEquals("x509", a.getId().getScheme(), p + ": " + acl);
                }
            }
            assertEquals(
                    Perms.ALL,
                    perms(c, ClusterPaths.vm("vm-1"), CertificateAuthority.zooKeeperId(CLUSTER, Role.COORDINATOR)));
            assertEquals(
                    Perms.READ | Perms.WRITE,
                    perms(c, ClusterPaths.vm("vm-1"), CertificateAuthority.zooKeeperId(CLUSTER, Role.AGENT)));
            assertEquals(
                    Perms.READ, perms(c, ClusterPaths.TERM, CertificateAuthority.zooKeeperId(CLUSTER, Role.AGENT)));
            assertEquals(
                    Perms.READ,
                    perms(c, ClusterPaths.vm("vm-1"), CertificateAuthority.zooKeeperId(CLUSTER, Role.VIEWER)));
            // The latch node Curator's recipe would create gets the same treatment.
            String latch = c.getChildren().forPath(ClusterPaths.LEADER).getFirst();
            assertEquals(
                    Perms.READ,
                    perms(c, ClusterPaths.LEADER + "/" + latch, CertificateAuthority.zooKeeperId(CLUSTER, Role.AGENT)));
        }
    }

    private static int perms(CuratorFramework c, String path, String id) throws Exception {
        return c.getACL().forPath(path).stream()
                .filter(a -> a.getId().getId().equals(id))
                .mapToInt(ACL::getPerms)
                .findFirst()
                .orElse(0);
    }

    @Test
    void operatorsAndViewersReadButCannotWrite() throws Exception {
        for (Credentials who : List.of(operator, viewer)) {
            try (CuratorFramework c = client(who)) {
                assertNotNull(c.getData().forPath(ClusterPaths.vm("vm-1")));
                assertNotNull(c.getChildren().forPath(ClusterPaths.LEADER));
                assertThrows(
                        KeeperException.NoAuthException.class,
                        () -> c.setData().forPath(ClusterPaths.vm("vm-1"), new byte[] {2}));
                assertThrows(
                        KeeperException.NoAuthException.class,
                        () -> c.create().forPath(ClusterPaths.intent("x"), new byte[0]));
                assertThrows(
                        KeeperException.NoAuthException.class,
                        () -> c.create().withMode(CreateMode.EPHEMERAL).forPath(ClusterPaths.host("h"), new byte[0]));
                assertThrows(
                        KeeperException.NoAuthException.class, () -> c.delete().forPath(ClusterPaths.TERM));
            }
        }
    }

    @Test
    void agentsDoWhatAgentsDoAndNothingMore() throws Exception {
        try (CuratorFramework c = client(agent)) {
            // Registration, run lock, ownership commit, run lock handed over.
            c.create().withMode(CreateMode.EPHEMERAL).forPath(ClusterPaths.host("host-1"), new byte[] {1});
            c.setData().forPath(ClusterPaths.host("host-1"), new byte[] {2});
            c.create().withMode(CreateMode.EPHEMERAL).forPath(ClusterPaths.running("vm-1"), new byte[] {1});
            c.setData().forPath(ClusterPaths.vm("vm-1"), new byte[] {3});
            c.delete().forPath(ClusterPaths.running("vm-1"));
            String latch = c.getChildren().forPath(ClusterPaths.LEADER).getFirst();
            assertNotNull(c.getData().forPath(ClusterPaths.LEADER + "/" + latch));

            assertThrows(
                    KeeperException.NoAuthException.class,
                    () -> c.delete().forPath(ClusterPaths.LEADER + "/" + latch),
                    "an agent cannot unseat the leader");
            assertThrows(
                    KeeperException.NoAuthException.class,
                    () -> c.setData().forPath(ClusterPaths.TERM, new byte[] {9}),
                    "nor move the leader's fencing term");
            assertThrows(
                    KeeperException.NoAuthException.class,
                    () -> c.create().forPath(ClusterPaths.intent("x"), new byte[0]));
            assertThrows(
                    KeeperException.NoAuthException.class,
                    () -> c.create().forPath(ClusterPaths.maintenance("host-1"), new byte[0]));
            assertThrows(
                    KeeperException.NoAuthException.class,
                    () -> c.create().forPath(ClusterPaths.vm("vm-2"), new byte[0]),
                    "VM records are the coordinators'");
            assertThrows(KeeperException.NoAuthException.class, () -> c.delete().forPath(ClusterPaths.vm("vm-1")));
            assertThrows(
                    KeeperException.NoAuthException.class,
                    () -> c.create().forPath("/elsewhere", new byte[0]),
                    "no new top-level nodes");
            assertThrows(
                    KeeperException.NoAuthException.class,
                    () -> c.setACL()
                            .withACL(List.of(new ACL(Perms.ALL, org.apache.zookeeper.ZooDefs.Ids.ANYONE_ID_UNSAFE)))
                            .forPath(ClusterPaths.vm("vm-1")),
                    "nor open a node up");
        }
    }

    /**
     * A cluster tree whose ACLs are open (made by an --insecure run of the cluster, or squatted
     * before the cluster first started): the audit names the node, the repair sets the cluster's
     * ACLs on the whole tree, and then an operator can no longer write there.
     */
    @Test
    void anOpenLayoutNodeIsFoundByTheAuditAndRepaired() throws Exception {
        ZkAcls acls = new ZkAcls(CLUSTER);
        try (CuratorFramework c = client(coordinator)) {
            assertEquals(List.of(), AclAudit.audit(c, acls), "a layout made securely passes");
            c.setACL().withACL(org.apache.zookeeper.ZooDefs.Ids.OPEN_ACL_UNSAFE).forPath(ClusterPaths.HOSTS);
            c.create()
                    .withACL(org.apache.zookeeper.ZooDefs.Ids.OPEN_ACL_UNSAFE)
                    .forPath(ClusterPaths.host("planted"), new byte[] {1});
            List<AclAudit.Finding> found = AclAudit.audit(c, acls);
            assertEquals(1, found.size(), found.toString());
            assertTrue(
                    found.getFirst().toString().startsWith("/ferry/sec/hosts has [world:anyone=rwcda], not ["),
                    found.getFirst().toString());
        }
        try (CuratorFramework op = client(operator)) {
            op.setData().forPath(ClusterPaths.host("planted"), new byte[] {2});
        }
        try (CuratorFramework c = client(coordinator)) {
            assertEquals(2, AclAudit.repair(c, acls), "/hosts and the node planted under it");
            assertEquals(List.of(), AclAudit.audit(c, acls));
            c.delete().forPath(ClusterPaths.host("planted"));
        }
    }

    /**
     * ZooKeeper checked only the CA: an agent whose certificate `ferry pki revoke` had listed still
     * connected and wrote with the agents' ACLs until the CA was replaced. Now the server refuses
     * it at its next connection, with a log line naming the revocation, while another agent
     * connects and writes as before; the server is never restarted.
     */
    /**
     * A refused ZooKeeper client sees only "connection loss", so an operator whose certificate was
     * revoked was told nothing but that ZooKeeper could not be reached. The probe connects as the
     * client did and says which refusal it was, server by server.
     */
    @Test
    void aRefusedClientIsToldWhyItGotNoSessionNotOnlyConnectionLoss() throws Exception {
        Duration wait = Duration.ofMillis(1500);
        Credentials revoked = issue(ca, "host-4", Role.AGENT);
        ca.revoke(List.of(revoked.loadCertificate()), UTC);
        String why = ZkClients.of(server.connectString(), CLUSTER, SESSION, ZkSecurity.x509(revoked))
                .whyNoSession();
        assertTrue(
                why.contains("took the TLS handshake, then closed the connection: it refuses this certificate (ferry://"
                        + CLUSTER + "/agent/host-4) (revoked, or not an identity of this cluster"),
                why);

        int closedPort;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            closedPort = s.getLocalPort();
        }
        List<ZkProbe.Finding> two = ZkProbe.probe(
                "127.0.0.1:" + closedPort + "," + server.connectString(), ZkSecurity.x509(operator), wait);
        assertEquals(2, two.size(), two.toString());
        assertEquals(ZkProbe.Outcome.REFUSED, two.get(0).outcome(), two.toString());
        assertEquals(ZkProbe.Outcome.OPEN, two.get(1).outcome(), "a cluster identity is accepted: " + two);

        // Another CA's certificate: its own trust store does not trust the server's either.
        ZkProbe.Finding stranger = ZkProbe.probe(server.connectString(), ZkSecurity.x509(foreign), wait)
                .getFirst();
        assertEquals(ZkProbe.Outcome.TLS_REFUSED, stranger.outcome(), stranger.toString());
        assertTrue(
                stranger.describe(ZkSecurity.x509(foreign)).contains("do not trust each other"), stranger.toString());

        // Plaintext to the TLS port: the server waits for a TLS hello that never comes.
        ZkProbe.Finding plain = ZkProbe.probe(server.connectString(), ZkSecurity.plaintext(), wait)
                .getFirst();
        assertTrue(plain.describe(ZkSecurity.plaintext()).contains("this client has no certificate"), plain.toString());
    }

    @Test
    void aRevokedAgentCannotConnectToZooKeeperWhileAnotherStillCanWithoutARestart() throws Exception {
        Credentials revoked = issue(ca, "host-7", Role.AGENT);
        Credentials kept = issue(ca, "host-8", Role.AGENT);
        try (CuratorFramework c = client(revoked)) {
            c.create().withMode(CreateMode.EPHEMERAL).forPath(ClusterPaths.host("host-7"), new byte[] {1});
        }
        try (var logs = ProviderLog.capture()) {
            ca.revoke(List.of(revoked.loadCertificate()), UTC);

            assertFalse(connects(ZkTls.clientConfig(revoked)), "a revoked agent gets no session, so writes nothing");
            String line = logs.awaitLine("refused a ZooKeeper client");
            assertTrue(line.contains("the certificate of ferry://" + CLUSTER + "/agent/host-7 (serial "), line);
            assertTrue(line.contains("was revoked at"), line);

            try (CuratorFramework c = client(kept)) {
                c.create().withMode(CreateMode.EPHEMERAL).forPath(ClusterPaths.host("host-8"), new byte[] {1});
                c.setData().forPath(ClusterPaths.host("host-8"), new byte[] {2});
            }
        }
    }

    /**
     * The provider is asked once per connection, so a revoked agent that was already connected
     * kept its connection (and every write its role allows) for as long as it lasted. The server
     * closes it within a sweep of the list changing; the client cannot reconnect, so its session
     * expires after its timeout and its ephemeral nodes (registration, run locks) go with it, as
     * when a host is cut off. Another agent's open connection is untouched.
     */
    @Test
    void aRevokedAgentsOpenZooKeeperConnectionIsClosedAndItsSessionExpires() throws Exception {
        Credentials revoked = issue(ca, "host-5", Role.AGENT);
        Credentials kept = issue(ca, "host-6", Role.AGENT);
        try (var logs = ProviderLog.capture();
                CuratorFramework gone = client(revoked);
                CuratorFramework other = client(kept)) {
            gone.create().withMode(CreateMode.EPHEMERAL).forPath(ClusterPaths.host("host-5"), new byte[] {1});
            other.create().withMode(CreateMode.EPHEMERAL).forPath(ClusterPaths.host("host-6"), new byte[] {1});
            BlockingQueue<ConnectionState> states = new LinkedBlockingQueue<>();
            gone.getConnectionStateListenable().addListener((client, state) -> states.add(state));
            BlockingQueue<ConnectionState> otherStates = new LinkedBlockingQueue<>();
            other.getConnectionStateListenable().addListener((client, state) -> otherStates.add(state));

            ca.revoke(List.of(revoked.loadCertificate()), UTC);

            assertEquals(
                    ConnectionState.SUSPENDED,
                    states.poll(10, TimeUnit.SECONDS),
                    "the revoked agent's open connection is closed");
            String line = logs.awaitLine("closing the ZooKeeper connection of session");
            assertTrue(line.contains("ferry://" + CLUSTER + "/agent/host-5"), line);
            assertThrows(
                    KeeperException.ConnectionLossException.class,
                    () -> gone.setData().forPath(ClusterPaths.host("host-5"), new byte[] {2}),
                    "and it cannot come back to write");
            // Its session outlives the connection by its timeout, then its ephemeral node goes.
            long deadline = System.nanoTime() + SESSION.multipliedBy(3).toNanos();
            while (other.checkExists().forPath(ClusterPaths.host("host-5")) != null) {
                assertTrue(System.nanoTime() < deadline, "the revoked agent's session never expired");
                Thread.sleep(200);
            }
            assertEquals(ConnectionState.LOST, states.poll(SESSION.toSeconds() * 2, TimeUnit.SECONDS));

            other.setData().forPath(ClusterPaths.host("host-6"), new byte[] {2});
            assertEquals(List.of(), List.copyOf(otherStates), "the other agent's connection was never cut");
        }
    }

    /** The provider's log lines, while a test looks at them. */
    private static final class ProviderLog implements AutoCloseable {
        private final ch.qos.logback.classic.Logger logger =
                (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger(RevocationCheckingX509Provider.class);
        private final ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> lines =
                new ch.qos.logback.core.read.ListAppender<>();

        static ProviderLog capture() {
            ProviderLog l = new ProviderLog();
            l.lines.start();
            l.logger.addAppender(l.lines);
            return l;
        }

        /** The first line containing {@code text}, waiting a few seconds for it (the appender appends under its own lock). */
        String awaitLine(String text) throws InterruptedException {
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
            while (true) {
                synchronized (lines) {
                    for (var e : lines.list) {
                        if (e.getFormattedMessage().contains(text)) {
                            return e.getFormattedMessage();
                        }
                    }
                }
                assertTrue(System.nanoTime() < deadline, "no log line containing '" + text + "'");
                Thread.sleep(50);
            }
        }

        @Override
        public void close() {
            logger.detachAppender(lines);
            lines.stop();
        }
    }
}
