package dev.ferry.cluster.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import dev.ferry.pki.CertificateAuthority;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.RevocationList;
import dev.ferry.pki.Role;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.zookeeper.server.auth.ProviderRegistry;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.slf4j.LoggerFactory;

/**
 * The first secure embedded server of a JVM built its {@link RevocationCheckingX509Provider}
 * twice (its start-up line appeared twice in `cluster up`'s coordinator log): once when the
 * server asked ZooKeeper for it, and again when the first client connected, because ZooKeeper's
 * registry then ran its lazy first initialization, which builds every configured provider anew
 * and replaces the one already there.
 */
class RevocationProviderBuiltTwiceTest {
    private static final String CLUSTER = "once";
    private static final Clock UTC = Clock.systemUTC();

    @TempDir
    Path dir;

    @Test
    void theFirstSecureServerOfAJvmBuildsItsRevocationProviderOnce() throws Exception {
        CertificateAuthority ca = CertificateAuthority.create(dir.resolve("ca"), CLUSTER, Duration.ofDays(30), UTC);
        Credentials zk = SecureZooKeeperTest.serverCredentials(ca, dir.resolve("z"))
                .withRevocationList(dir.resolve("ca").resolve(RevocationList.FILE));
        Credentials agent =
                ca.issue("host-1", Role.AGENT, Duration.ofDays(1), List.of(), List.of(), dir.resolve("a"), UTC);

        var logger = (ch.qos.logback.classic.Logger) LoggerFactory.getLogger(RevocationCheckingX509Provider.class);
        ListAppender<ILoggingEvent> lines = new ListAppender<>();
        lines.start();
        logger.addAppender(lines);
        // As in a new JVM (the coordinator's): another test of this fork may have spent the
        // registry's first initialization already, which hid the second build.
        ProviderRegistry.reset();
        try (EmbeddedZooKeeper server = new EmbeddedZooKeeper(
                        dir.resolve("data"), new InetSocketAddress("127.0.0.1", 0), ZkSecurity.x509(zk))
                .start()) {
            // The second build came with the first connection.
            try (CuratorFramework c = ZkClients.of(
                            server.connectString(), CLUSTER, Duration.ofSeconds(10), ZkSecurity.x509(agent))
                    .singleAttempt()) {
                c.start();
                assertTrue(c.blockUntilConnected(10, TimeUnit.SECONDS), "the agent connects");
                c.checkExists().forPath("/");
            }
        } finally {
            logger.detachAppender(lines);
            lines.stop();
        }
        List<String> builds;
        synchronized (lines) {
            builds = lines.list.stream()
                    .map(ILoggingEvent::getFormattedMessage)
                    .filter(m ->
                            m.startsWith("ZooKeeper clients' certificates are checked against the revocation list"))
                    .toList();
        }
        assertEquals(1, builds.size(), "one provider (and so at most one sweep) per server: " + builds);
    }
}
