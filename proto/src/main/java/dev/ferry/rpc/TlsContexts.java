package dev.ferry.rpc;

import dev.ferry.pki.CertificateExpiry;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.Pem;
import io.grpc.ChannelCredentials;
import io.grpc.ServerCredentials;
import io.grpc.netty.shaded.io.grpc.netty.GrpcSslContexts;
import io.grpc.netty.shaded.io.grpc.netty.NettySslContextChannelCredentials;
import io.grpc.netty.shaded.io.grpc.netty.NettySslContextServerCredentials;
import io.grpc.netty.shaded.io.netty.handler.ssl.ClientAuth;
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

    private final PrivateKey key;
    private final X509Certificate certificate;
    private final X509Certificate ca;
    private final String cluster;
    private final Clock clock;
    private final ServerCredentials server;
    private final Map<PeerRequirement, ChannelCredentials> clients = new ConcurrentHashMap<>();

    TlsContexts(Credentials credentials, Clock clock) {
        this.key = Pem.readPrivateKey(credentials.key());
        this.certificate = Pem.readCertificate(credentials.certificate());
        this.ca = Pem.readCertificate(credentials.ca());
        this.cluster = credentials.identity().cluster();
        this.clock = clock;
        try {
            SslContext ctx = GrpcSslContexts.configure(SslContextBuilder.forServer(key, certificate), SslProvider.JDK)
                    .protocols(PROTOCOL)
                    .clientAuth(ClientAuth.REQUIRE)
                    .trustManager(new IdentityTrustManager(ca, cluster, Optional.empty(), clock))
                    .build();
            this.server = NettySslContextServerCredentials.create(ctx);
        } catch (SSLException e) {
            throw new IllegalStateException("cannot build the TLS server context of " + credentials.identity(), e);
        }
    }

    ServerCredentials server() {
        return server;
    }

    /** The certificate presented and the CA trusted, as read at construction (what peers see until a restart). */
    CertificateExpiry expiry() {
        return CertificateExpiry.of(certificate, ca);
    }

    ChannelCredentials client(PeerRequirement peer) {
        return clients.computeIfAbsent(peer, p -> {
            try {
                SslContext ctx = GrpcSslContexts.configure(SslContextBuilder.forClient(), SslProvider.JDK)
                        .protocols(PROTOCOL)
                        .keyManager(key, certificate)
                        .trustManager(new IdentityTrustManager(ca, cluster, Optional.of(p), clock))
                        .build();
                return NettySslContextChannelCredentials.create(ctx);
            } catch (SSLException e) {
                throw new IllegalStateException("cannot build a TLS client context for " + p, e);
            }
        });
    }
}
