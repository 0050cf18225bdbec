package dev.ferry.cluster.store;

import dev.ferry.pki.Credentials;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.zookeeper.client.ZKClientConfig;
import org.apache.zookeeper.common.ClientX509Util;

/**
 * ZooKeeper's TLS settings for Ferry, client side and server side: Netty sockets, TLS 1.3, a
 * client certificate of the cluster CA required, clients named by ZooKeeper's own {@code
 * X509AuthenticationProvider} (their certificate's subject, which Ferry's CA makes the cluster and
 * role: see {@link dev.ferry.pki.CertificateAuthority#zooKeeperId}). Servers Ferry starts use that
 * provider through {@link RevocationCheckingX509Provider}, which also refuses certificates the
 * cluster's revocation list names; an external ensemble without Ferry's jars on its class path can
 * use ZooKeeper's own provider instead and then does not honour the list.
 *
 * <p>Host names: clients check the server's ({@code ssl.hostnameVerification=true}), so a
 * ZooKeeper server's certificate must name the address or DNS name clients dial (`ferry pki issue
 * --role zookeeper --san ADDRESS`); then another certificate of the cluster CA, an agent's say,
 * cannot stand in for a ZooKeeper server. Servers do not check clients' host names: a client is
 * the role its certificate names, wherever it connects from.
 */
public final class ZkTls {
    public static final String PROTOCOL = "TLSv1.3";
    private static final String NETTY_SOCKET = "org.apache.zookeeper.ClientCnxnSocketNetty";
    private static final Map<Credentials, Path> KEY_STORES = new ConcurrentHashMap<>();
    private static final String KEY_STORE_PREFIX = "ferry-zk-";
    private static final Pattern KEY_STORE_DIR = Pattern.compile("ferry-zk-([0-9]{1,18})-[0-9]+");

    private ZkTls() {}

    /**
     * A client's settings: a {@link ZKClientConfig} of its own, never system properties, since one
     * JVM may hold clients of several identities (and an embedded server's properties). Every TLS
     * setting is set explicitly: ZooKeeper copies {@code zookeeper.ssl.*} system properties into
     * each new config, and a server in the same JVM sets some.
     */
    static ZKClientConfig clientConfig(Credentials credentials) {
        ZKClientConfig c = new ZKClientConfig();
        c.setProperty(ZKClientConfig.ZOOKEEPER_CLIENT_CNXN_SOCKET, NETTY_SOCKET);
        c.setProperty(ZKClientConfig.SECURE_CLIENT, "true");
        // The certificate authenticates; SASL would only be attempted if a JAAS file happened to exist.
        c.setProperty(ZKClientConfig.ENABLE_CLIENT_SASL_KEY, "false");
        try (ClientX509Util x = new ClientX509Util()) {
            c.setProperty(
                    x.getSslKeystoreLocationProperty(), keyStore(credentials).toString());
            c.setProperty(x.getSslKeystoreTypeProperty(), "PEM");
            c.setProperty(x.getSslKeystorePasswdProperty(), "");
            c.setProperty(
                    x.getSslTruststoreLocationProperty(),
                    credentials.ca().toAbsolutePath().toString());
            c.setProperty(x.getSslTruststoreTypeProperty(), "PEM");
            c.setProperty(x.getSslTruststorePasswdProperty(), "");
            c.setProperty(x.getSslProtocolProperty(), PROTOCOL);
            c.setProperty(x.getSslEnabledProtocolsProperty(), PROTOCOL);
            c.setProperty(x.getSslHostnameVerificationEnabledProperty(), "true");
            // A reverse lookup would let whoever controls PTR records choose the name checked.
            c.setProperty(x.getSslAllowReverseDnsLookupProperty(), "false");
        }
        return c;
    }

    /**
     * A server's settings, keyed as in zoo.cfg (ZooKeeper turns zoo.cfg keys it does not know into
     * {@code zookeeper.}-prefixed system properties; the embedded server sets those directly).
     * Not the port lines ({@code secureClientPort}, {@code secureClientPortAddress}), which differ
     * per server. {@code keyStore} is the server's key and certificate in one PEM file (see {@link
     * #keyStore}). {@code crl} is the cluster's revocation list, which {@link
     * RevocationCheckingX509Provider} honours (it need not exist yet).
     */
    public static Map<String, String> serverConfig(Path keyStore, Path ca, Path crl) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("serverCnxnFactory", "org.apache.zookeeper.server.NettyServerCnxnFactory");
        m.put("authProvider.x509", RevocationCheckingX509Provider.class.getName());
        m.put(RevocationCheckingX509Provider.CRL_KEY, crl.toAbsolutePath().toString());
        m.put("ssl.authProvider", "x509");
        m.put("ssl.clientAuth", "need");
        m.put("ssl.keyStore.location", keyStore.toAbsolutePath().toString());
        m.put("ssl.keyStore.type", "PEM");
        m.put("ssl.trustStore.location", ca.toAbsolutePath().toString());
        m.put("ssl.trustStore.type", "PEM");
        m.put("ssl.protocol", PROTOCOL);
        m.put("ssl.enabledProtocols", PROTOCOL);
        m.put("ssl.hostnameVerification", "false");
        m.put("ssl.clientHostnameVerification", "false");
        return m;
    }

    /**
     * ZooKeeper's PEM key store is one file holding the key and the certificate, where Ferry keeps
     * two: they are joined once per process into a file only this user can read (0600, in a 0700
     * temporary directory), removed when the JVM exits. A process killed with SIGKILL cannot remove
     * it, so the directory's name carries the process id and the next process sweeps the copies of
     * processes that are gone (a private key must not pile up in /tmp: the chaos suite alone kills
     * hundreds of daemons).
     */
    public static Path keyStore(Credentials credentials) {
        return KEY_STORES.computeIfAbsent(credentials, c -> {
            try {
                Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
                sweepStaleKeyStores(tmp);
                Path dir = Files.createTempDirectory(
                        tmp,
                        KEY_STORE_PREFIX + ProcessHandle.current().pid() + "-",
                        PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
                dir.toFile().deleteOnExit();
                Path file = dir.resolve(c.identity().name() + ".pem");
                writeKeyStore(c, file);
                file.toFile().deleteOnExit();
                return file;
            } catch (IOException e) {
                throw new UncheckedIOException("cannot prepare the ZooKeeper key store: " + e.getMessage(), e);
            }
        });
    }

    /**
     * Removes the key-store directories in {@code tmp} of processes that no longer run: {@code
     * ferry-zk-PID-*} whose PID is not a live process. Only this user's (another user's would not
     * be deletable anyway); a recycled PID only delays a sweep. Returns how many it removed.
     */
    static int sweepStaleKeyStores(Path tmp) {
        int removed = 0;
        try (DirectoryStream<Path> dirs = Files.newDirectoryStream(tmp, KEY_STORE_PREFIX + "*")) {
            for (Path dir : dirs) {
                Matcher m = KEY_STORE_DIR.matcher(dir.getFileName().toString());
                if (!m.matches() || ProcessHandle.of(Long.parseLong(m.group(1))).isPresent()) {
                    continue;
                }
                try (DirectoryStream<Path> files = Files.newDirectoryStream(dir)) {
                    for (Path f : files) {
                        Files.deleteIfExists(f);
                    }
                    Files.deleteIfExists(dir);
                    removed++;
                } catch (IOException e) {
                    // Another user's, or being swept by another process at the same moment.
                }
            }
        } catch (IOException | NumberFormatException e) {
            // Nothing to sweep, or a name too long for a pid: the sweep is hygiene, never fatal.
        }
        return removed;
    }

    /** Writes {@code credentials}' key and certificate into one new PEM file, 0600. */
    public static void writeKeyStore(Credentials credentials, Path file) throws IOException {
        Files.createFile(file, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        String text = Files.readString(credentials.key(), StandardCharsets.US_ASCII) + "\n"
                + Files.readString(credentials.certificate(), StandardCharsets.US_ASCII);
        Files.writeString(file, text, StandardCharsets.US_ASCII, StandardOpenOption.TRUNCATE_EXISTING);
    }
}
