package dev.ferry.rpc;

import dev.ferry.pki.CertificateExpiry;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.Pem;
import dev.ferry.pki.RevocationWatch;
import io.grpc.ChannelCredentials;
import io.grpc.ServerCredentials;
import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.shaded.io.grpc.netty.NettySslContextChannelCredentials;
import io.grpc.netty.shaded.io.grpc.netty.NettySslContextServerCredentials;
import io.grpc.netty.shaded.io.netty.handler.ssl.ClientAuth;
import io.grpc.netty.shaded.io.netty.handler.ssl.OpenSsl;
import io.grpc.netty.shaded.io.netty.handler.ssl.OpenSslSessionContext;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContext;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslContextBuilder;
import io.grpc.netty.shaded.io.netty.handler.ssl.SslProvider;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import javax.net.ssl.SSLException;

/**
 * The TLS contexts of one {@link TransportSecurity.MutualTls}: the key and certificate are read
 * once (a renewed certificate takes a restart, see docs/SECURITY.md), one server context, and one
 * client context per {@link PeerRequirement} (they differ only in whom they accept).
 */
final class TlsContexts {
    /** TLS 1.3 only: no downgrade to older versions, no renegotiation, forward secrecy always. */
    static final String PROTOCOL = "TLSv1.3";

    /**
     * Which TLS implementation to use: {@code boringssl} (the default where grpc-netty-shaded's
     * bundled netty-tcnative loads) or {@code jdk}. BoringSSL moves about twice the bytes per CPU
     * second of the JDK's JSSE on these machines (docs/BENCHMARKS.md "The cost of mutual TLS"); the
     * property exists so that the benchmark can measure both.
     */
    static final String PROVIDER_PROPERTY = "ferry.tls.provider";

    /** The implementation every context of this process uses, chosen once. */
    static final SslProvider PROVIDER = chooseProvider(System.getProperty(PROVIDER_PROPERTY, ""));

    static SslProvider chooseProvider(String wanted) {
        return switch (wanted) {
            case "jdk" -> SslProvider.JDK;
            case "boringssl" -> {
                if (!OpenSsl.isAvailable()) {
                    throw new IllegalStateException("-D" + PROVIDER_PROPERTY
                            + "=boringssl but BoringSSL does not load here: " + OpenSsl.unavailabilityCause());
                }
                yield SslProvider.OPENSSL;
            }
            case "" -> OpenSsl.isAvailable() ? SslProvider.OPENSSL : SslProvider.JDK;
            default ->
                throw new IllegalArgumentException(
                        "-D" + PROVIDER_PROPERTY + "=" + wanted + ": expected boringssl or jdk");
        };
    }

    /** How start-up logs and benchmarks name the implementation in use. */
    static String providerName() {
        return PROVIDER == SslProvider.JDK ? "JDK" : OpenSsl.versionString();
    }

    private final PrivateKey key;
    private final X509Certificate certificate;
    private final X509Certificate ca;
    private final String cluster;
    private final Clock clock;
    private final RevocationWatch revocations;
    private final RevokedPeerCutoff cutoff;
    private final RevokedServerCutoff serverCutoff;
    private final ServerCredentials server;
    private final Map<PeerRequirement, ChannelCredentials> clients = new ConcurrentHashMap<>();

    TlsContexts(Credentials credentials, Clock clock) {
        this.key = Pem.readPrivateKey(credentials.key());
        this.certificate = Pem.readCertificate(credentials.certificate());
        this.ca = Pem.readCertificate(credentials.ca());
        this.cluster = credentials.identity().cluster();
        this.clock = clock;
        this.revocations = new RevocationWatch(credentials.revocationList(), ca);
        // Read now, so that a broken list is in the start-up log rather than at the first handshake.
        revocations.list();
        this.cutoff = new RevokedPeerCutoff(revocations);
        this.serverCutoff = new RevokedServerCutoff(revocations);
        try {
            SslContext ctx = GrpcSslContexts.configure(SslContextBuilder.forServer(key, certificate), PROVIDER)
                    .protocols(PROTOCOL)
                    .clientAuth(ClientAuth.REQUIRE)
                    .trustManager(new IdentityTrustManager(ca, cluster, Optional.empty(), clock, revocations))
                    .build();
            this.server = NettySslContextServerCredentials.create(ctx);
        } catch (SSLException e) {
            throw new IllegalStateException("cannot build the TLS server context of " + credentials.identity(), e);
        }
    }

    ServerCredentials server() {
        return server;
    }

    /** Ends calls of peers revoked after their handshake (servers put it first of their interceptors). */
    RevokedPeerCutoff cutoff() {
        return cutoff;
    }

    /** Ends calls to servers revoked after their handshake (every channel puts one innermost). */
    RevokedServerCutoff serverCutoff() {
        return serverCutoff;
    }

    /**
     * Makes every handshake of a client context a full one. A resumed TLS session skips the trust
     * manager: a channel that reconnected to a server revoked meanwhile (to the same address, from
     * the same context: every channel of a daemon) was let in on the session it had before, so a
     * client refused a revoked server only with a new context, not at its next connection. A full
     * handshake costs a signature and a key exchange per connection; Ferry's connections are few
     * and long-lived (a channel per peer, a connection per migration lane).
     */
    static void withoutResumption(SslContext ctx) {
        if (ctx.sessionContext() instanceof OpenSslSessionContext openSsl) {
            openSsl.setSessionCacheEnabled(false);
        } else {
            // The JDK's cache cannot be switched off; its sessions can be made to expire at once.
            ctx.sessionContext().setSessionTimeout(1);
        }
    }

    /** The certificate presented and the CA trusted, as read at construction (what peers see until a restart). */
    CertificateExpiry expiry() {
        return CertificateExpiry.of(certificate, ca);
    }

    ChannelCredentials client(PeerRequirement peer) {
        return clients.computeIfAbsent(peer, p -> {
            try {
                SslContext ctx = GrpcSslContexts.configure(SslContextBuilder.forClient(), PROVIDER)
                        .protocols(PROTOCOL)
                        .keyManager(key, certificate)
                        .trustManager(new IdentityTrustManager(ca, cluster, Optional.of(p), clock, revocations))
                        .build();
                withoutResumption(ctx);
                return NettySslContextChannelCredentials.create(ctx);
            } catch (SSLException e) {
                throw new IllegalStateException("cannot build a TLS client context for " + p, e);
            }
        });
    }
}
