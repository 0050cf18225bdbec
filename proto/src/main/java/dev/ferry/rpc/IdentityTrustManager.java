package dev.ferry.rpc;

import dev.ferry.pki.Credentials;
import dev.ferry.pki.Identity;
import dev.ferry.pki.PkiException;
import dev.ferry.pki.RevocationList;
import dev.ferry.pki.RevocationWatch;
import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.Optional;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * Trusts a peer's certificate when it chains to the cluster CA, is valid now, names exactly one
 * Ferry identity of this cluster, is not on the cluster's revocation list, and (for a client
 * checking its server) is the peer the channel was built for.
 *
 * <p>Why not the JDK's trust manager with host-name checks: Ferry's certificates name identities
 * ({@code ferry://CLUSTER/ROLE/NAME}), not addresses. An address proves nothing here (the migration
 * target is a host id the coordinator chose; its address is whatever it registered), and checking
 * identities instead means a host moved to a new address keeps its certificate. Being an
 * {@link X509ExtendedTrustManager}, this class is also where the JDK's engine-level host-name
 * check would run, so none runs in its place.
 */
final class IdentityTrustManager extends X509ExtendedTrustManager {
    private final X509Certificate ca;
    private final String cluster;
    /** What a server must be (client side); empty on servers, which authorize per call instead. */
    private final Optional<PeerRequirement> server;

    private final Clock clock;
    /** The cluster's revocation list, re-read when it changes; shared by a process's contexts. */
    private final RevocationWatch revocations;

    IdentityTrustManager(
            X509Certificate ca,
            String cluster,
            Optional<PeerRequirement> server,
            Clock clock,
            RevocationWatch revocations) {
        this.ca = ca;
        this.cluster = cluster;
        this.server = server;
        this.clock = clock;
        this.revocations = revocations;
    }

    /** The identity {@code chain} proves, or why it proves none acceptable here. */
    Identity verify(X509Certificate[] chain, Optional<PeerRequirement> requirement) throws CertificateException {
        if (chain == null || chain.length == 0) {
            throw new CertificateException("the peer presented no certificate");
        }
        X509Certificate leaf = chain[0];
        try {
            Credentials.verifyChain(leaf, ca, clock.instant(), "the peer's certificate");
        } catch (PkiException e) {
            throw new CertificateException(e.getMessage() + " (not issued by cluster " + cluster + "'s CA?)", e);
        }
        Identity peer = Identity.of(leaf)
                .orElseThrow(() -> new CertificateException(
                        "the peer's certificate names no Ferry identity (" + leaf.getSubjectX500Principal() + ")"));
        Optional<java.time.Instant> revoked = revocations.revokedAt(leaf);
        if (revoked.isPresent()) {
            throw new CertificateException("the certificate of " + peer + " (serial " + RevocationList.serialOf(leaf)
                    + ") was revoked at " + revoked.get() + " (" + revocations.file() + ")");
        }
        if (!peer.cluster().equals(cluster)) {
            throw new CertificateException(peer + " belongs to cluster " + peer.cluster() + ", not " + cluster);
        }
        if (requirement.isPresent() && !requirement.get().accepts(peer)) {
            throw new CertificateException("the peer is " + peer + " but this connection is for " + requirement.get());
        }
        return peer;
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        try {
            verify(chain, Optional.empty());
        } catch (CertificateException e) {
            // The client only sees a TLS alert; the reason is written here, for the operator. At
            // most one line a second, so that a client retrying in a loop cannot flood the log.
            REFUSALS.note(e.getMessage());
            throw e;
        }
    }

    /** Refused clients, logged at most once a second with a count of those not logged. */
    private static final class Refusals {
        private long lastLogNanos = System.nanoTime() - 2_000_000_000L;
        private long unlogged;

        synchronized void note(String reason) {
            long now = System.nanoTime();
            if (now - lastLogNanos < 1_000_000_000L) {
                unlogged++;
                return;
            }
            lastLogNanos = now;
            long more = unlogged;
            unlogged = 0;
            log.warn(
                    "refused a TLS client: {}{}",
                    reason,
                    more == 0 ? "" : " (and " + more + " more refused clients in the last second(s), not logged)");
        }
    }

    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(IdentityTrustManager.class);
    private static final Refusals REFUSALS = new Refusals();

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType) throws CertificateException {
        verify(chain, server);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        checkClientTrusted(chain, authType);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, Socket socket)
            throws CertificateException {
        checkServerTrusted(chain, authType);
    }

    @Override
    public void checkClientTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        checkClientTrusted(chain, authType);
    }

    @Override
    public void checkServerTrusted(X509Certificate[] chain, String authType, SSLEngine engine)
            throws CertificateException {
        checkServerTrusted(chain, authType);
    }

    @Override
    public X509Certificate[] getAcceptedIssuers() {
        return new X509Certificate[] {ca};
    }
}
