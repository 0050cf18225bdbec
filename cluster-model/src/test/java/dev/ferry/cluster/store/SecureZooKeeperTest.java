package dev.ferry.cluster.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.pki.CertificateAuthority;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.Role;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
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

    static EmbeddedZooKeeper server;
    static Credentials coordinator;
    static Credentials agent;
    static Credentials operator;
    static Credentials viewer;
    static Credentials foreign;

    @BeforeAll
    static void start() throws Exception {
        CertificateAuthority ca = CertificateAuthority.create(dir.resolve("ca"), CLUSTER, Duration.ofDays(30), UTC);
        Credentials zk = ca.issue(
                "zk-1",
                Role.ZOOKEEPER,
                Duration.ofDays(1),
                List.of(),
                List.of(InetAddress.getByName("127.0.0.1")),
                dir.resolve("z"),
                UTC);
        coordinator = issue(ca, "coordinator-1", Role.COORDINATOR);
        agent = issue(ca, "host-1", Role.AGENT);
        operator = issue(ca, "alice", Role.OPERATOR);
        viewer = issue(ca, "bob", Role.VIEWER);
        // Another CA naming the same cluster: its certificates prove nothing here.
        CertificateAuthority other =
                CertificateAuthority.create(dir.resolve("other"), CLUSTER, Duration.ofDays(30), UTC);
        foreign = other.issue(
                "coordinator-1", Role.COORDINATOR, Duration.ofDays(1), List.of(), List.of(), dir.resolve("f"), UTC);
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
}
