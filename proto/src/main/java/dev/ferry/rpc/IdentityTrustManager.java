package dev.ferry.rpc;

import dev.ferry.pki.Credentials;
import dev.ferry.pki.Identity;
import dev.ferry.pki.PkiException;
import java.net.Socket;
import java.security.cert.CertificateException;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.Optional;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.X509ExtendedTrustManager;

/**
 * Trusts a peer's certificate when it chains to the cluster CA, is valid now, names exactly one
 * Ferry identity of this cluster, and (for a client checking its server) is the peer the channel
 * was built for.
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

    IdentityTrustManager(X509Certificate ca, String cluster, Optional<PeerRequirement> server, Clock clock) {
        this.ca = ca;
        this.cluster = cluster;
        this.server = server;
        this.clock = clock;
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
        verify(chain, Optional.empty());
    }

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
