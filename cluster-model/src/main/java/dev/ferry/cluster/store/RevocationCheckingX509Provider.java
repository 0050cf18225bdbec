package dev.ferry.cluster.store;

import dev.ferry.pki.Identity;
import dev.ferry.pki.Pem;
import dev.ferry.pki.RevocationList;
import dev.ferry.pki.RevocationSweep;
import dev.ferry.pki.RevocationWatch;
import java.nio.file.Path;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.WeakHashMap;
import javax.servlet.http.HttpServletRequest;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.common.X509Exception;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.server.ServerCnxn;
import org.apache.zookeeper.server.auth.X509AuthenticationProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * ZooKeeper's x509 authentication, plus the cluster's revocation list: a ZooKeeper server that
 * names this class as its {@code authProvider.x509} refuses a client whose certificate the list
 * revokes, and closes the connections of clients a newer list revokes. Without it ZooKeeper's TLS
 * checks only the CA, so a revoked agent or coordinator key kept its role's ACLs in ZooKeeper
 * until the CA was replaced.
 *
 * <p>Everything else is ZooKeeper's own provider: the CA check of the client's chain, the id (the
 * certificate's subject, which {@link ZkAcls} name). The list is Ferry's {@link RevocationWatch},
 * as the gRPC side uses it: looked at (one stat) at every authentication and re-read when the file
 * changed, so `ferry pki revoke` takes effect without restarting the server; a list that does not
 * verify, is older or disappears leaves the last good one in force.
 *
 * <p>Where it applies: a Netty secure client port calls the provider once per connection, right
 * after the TLS handshake, and adds the connection to the server's only if it admits it; a
 * refusal closes the connection (the client sees its connection lost, retries, and never gets a session). ZooKeeper
 * only asks a provider again when a client sends {@code addauth x509}, and its ACL checks see the
 * id alone (every agent of a cluster has the same one), so the provider also keeps the connections
 * it admitted and, once a second, closes those whose certificate the list now revokes.
 *
 * <p>Closing a connection does not end its session: the session expires after its own timeout,
 * as when the client's network goes away, because the client cannot come back (every server
 * refuses it). That is deliberate: expiring it at once would drop a revoked agent's run locks
 * before the agent, still running its guests, noticed that it lost ZooKeeper and fenced them, so
 * the coordinator could restart a guest elsewhere while it still ran; the session timeout is what
 * Ferry's fencing is built on.
 *
 * <p>Configuration, as zoo.cfg keys (ZooKeeper makes a key it does not know a {@code zookeeper.}
 * system property; the embedded server sets the properties): {@value #CRL_KEY}, the list (default:
 * {@value RevocationList#FILE} beside the CA); {@value #CA_KEY}, the CA's certificate in PEM
 * (default: {@code ssl.trustStore.location}, which Ferry's servers give in PEM). A CA that cannot
 * be read fails the provider's creation; ZooKeeper then has no x509 provider and refuses every TLS
 * client ("X509 Auth provider not found"), so a misconfiguration closes the server rather than
 * opening it.
 */
public final class RevocationCheckingX509Provider extends X509AuthenticationProvider {
    private static final Logger log = LoggerFactory.getLogger(RevocationCheckingX509Provider.class);

    /** zoo.cfg key (system property {@code zookeeper.ferry.crl}): the revocation list. */
    public static final String CRL_KEY = "ferry.crl";
    /** zoo.cfg key (system property {@code zookeeper.ferry.ca}): the CA certificate, PEM. */
    public static final String CA_KEY = "ferry.ca";

    /** How often the connections this provider admitted are looked at against the list. */
    static final long SWEEP_MS = 1000;

    /**
     * The thread every provider's sweep of the process shares: it stats a file a second. Not the
     * gRPC side's, so that closing ZooKeeper connections never delays ending revoked calls.
     */
    private static final String SWEEP_THREAD = "ferry-zk-revocation-sweep";

    private final RevocationWatch revocations;
    /**
     * The connections this provider admitted, with the client's certificate. Weak keys: ZooKeeper
     * owns a connection's life; one it dropped without this provider seeing it close is forgotten
     * with it. Guarded by itself.
     */
    private final Map<ServerCnxn, X509Certificate> admitted = Collections.synchronizedMap(new WeakHashMap<>());
    /** Running while connections are admitted, so that a removed provider costs nothing. */
    private RevocationSweep sweeping;

    /** What ZooKeeper calls ({@code authProvider.x509=} this class): configured by system properties. */
    public RevocationCheckingX509Provider() throws X509Exception {
        super();
        Path ca = Path.of(property(CA_KEY)
                .or(() -> property("ssl.trustStore.location"))
                .orElseThrow(() -> new IllegalStateException("zookeeper." + CA_KEY
                        + " (or zookeeper.ssl.trustStore.location) must name the cluster CA's certificate")));
        Path crl = property(CRL_KEY).map(Path::of).orElse(ca.toAbsolutePath().resolveSibling(RevocationList.FILE));
        this.revocations = new RevocationWatch(crl.toAbsolutePath(), Pem.readCertificate(ca));
        Optional<RevocationList> now = revocations.list();
        log.info(
                "ZooKeeper clients' certificates are checked against the revocation list {} ({})",
                revocations.file(),
                now.map(Object::toString).orElse("none yet"));
    }

    private static Optional<String> property(String key) {
        String v = System.getProperty("zookeeper." + key);
        return v == null || v.isBlank() ? Optional.empty() : Optional.of(v.strip());
    }

    /** The file this provider reads the list from. */
    public Path revocationList() {
        return revocations.file();
    }

    @Override
    public KeeperException.Code handleAuthentication(ServerCnxn cnxn, byte[] authData) {
        Optional<X509Certificate> leaf = leaf(cnxn.getClientCertificateChain());
        if (leaf.isPresent()) {
            Optional<Instant> revoked = revocations.revokedAt(leaf.get());
            if (revoked.isPresent()) {
                log.warn(
                        "refused a ZooKeeper client ({}, session 0x{}): {}",
                        cnxn.getRemoteSocketAddress(),
                        Long.toHexString(cnxn.getSessionId()),
                        reason(leaf.get(), revoked.get()));
                return KeeperException.Code.AUTHFAILED;
            }
        }
        KeeperException.Code code = super.handleAuthentication(cnxn, authData);
        if (code == KeeperException.Code.OK && leaf.isPresent()) {
            admit(cnxn, leaf.get());
        }
        return code;
    }

    /** The admin server's path (Ferry runs none; an external ensemble might): the same check. */
    @Override
    public List<Id> handleAuthentication(HttpServletRequest request, byte[] authData) {
        Object chain = request.getAttribute(X509_CERTIFICATE_ATTRIBUTE_NAME);
        if (chain instanceof X509Certificate[] certs) {
            Optional<X509Certificate> leaf = leaf(certs);
            Optional<Instant> revoked = leaf.flatMap(revocations::revokedAt);
            if (revoked.isPresent()) {
                log.warn("refused an admin server client: {}", reason(leaf.get(), revoked.get()));
                return List.of();
            }
        }
        return super.handleAuthentication(request, authData);
    }

    private static Optional<X509Certificate> leaf(Certificate[] chain) {
        return chain != null && chain.length > 0 && chain[0] instanceof X509Certificate x
                ? Optional.of(x)
                : Optional.empty();
    }

    private void admit(ServerCnxn cnxn, X509Certificate cert) {
        admitted.put(cnxn, cert);
        synchronized (this) {
            if (sweeping == null) {
                sweeping = new RevocationSweep(
                                SWEEP_THREAD,
                                Duration.ofMillis(SWEEP_MS),
                                "open ZooKeeper connections",
                                log,
                                this::sweep)
                        .start();
            }
        }
    }

    /**
     * Closes the admitted connections whose certificate the list in force revokes, and forgets the
     * ones ZooKeeper closed. Every connection is checked every time (a lookup in the list), not
     * only when the list's number changes: a connection admitted while a new list was being read
     * is then still caught at the next sweep. Returns how many it closed.
     */
    int sweep() {
        List<Map.Entry<ServerCnxn, X509Certificate>> open;
        synchronized (admitted) {
            admitted.keySet().removeIf(ServerCnxn::isStale);
            open = new ArrayList<>(admitted.entrySet());
        }
        if (open.isEmpty()) {
            synchronized (this) {
                if (admitted.isEmpty() && sweeping != null) {
                    sweeping.close();
                    sweeping = null;
                }
            }
            return 0;
        }
        Optional<RevocationList> list = revocations.list();
        if (list.isEmpty()) {
            return 0;
        }
        int closed = 0;
        for (Map.Entry<ServerCnxn, X509Certificate> e : open) {
            Optional<Instant> revoked = list.get().revokedAt(e.getValue());
            if (revoked.isEmpty()) {
                continue;
            }
            ServerCnxn cnxn = e.getKey();
            log.warn(
                    "closing the ZooKeeper connection of session 0x{} ({}): {}; the session expires after its"
                            + " timeout, as the client cannot reconnect",
                    Long.toHexString(cnxn.getSessionId()),
                    cnxn.getRemoteSocketAddress(),
                    reason(e.getValue(), revoked.get()));
            admitted.remove(cnxn);
            cnxn.close(ServerCnxn.DisconnectReason.CONNECTION_CLOSE_FORCED);
            closed++;
        }
        return closed;
    }

    private String reason(X509Certificate cert, Instant at) {
        String who = Identity.of(cert)
                .map(Object::toString)
                .orElse(cert.getSubjectX500Principal().getName());
        return "the certificate of " + who + " (serial " + RevocationList.serialOf(cert) + ") was revoked at " + at
                + " (" + revocations.file() + ")";
    }
}
