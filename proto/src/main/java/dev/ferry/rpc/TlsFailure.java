package dev.ferry.rpc;

import io.grpc.StatusRuntimeException;
import java.security.cert.CertificateException;
import java.util.Optional;
import javax.net.ssl.SSLException;

/**
 * What a failed TLS handshake means, in words an operator can act on. gRPC reports every one as
 * UNAVAILABLE "ssl exception"; the cause chain says which side refused whom.
 */
public final class TlsFailure {
    private TlsFailure() {}

    /** Empty when {@code e} is not a TLS handshake failure; else one sentence naming {@code peer}. */
    public static Optional<String> explain(StatusRuntimeException e, String peer) {
        boolean tls = false;
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof CertificateException ce) {
                // Our own trust manager refused the server: its message says why.
                return Optional.of("refused the certificate of " + peer + ": " + ce.getMessage());
            }
            if (t instanceof SSLException) {
                tls = true;
            }
        }
        if (!tls && !String.valueOf(e.getStatus().getDescription()).contains("ssl exception")) {
            return Optional.empty();
        }
        return Optional.of("the TLS handshake with " + peer + " failed: it refused this certificate (revoked with "
                + "`ferry pki revoke`, expired, not yet valid, issued by another CA, or of a role it does not "
                + "accept; its log names the reason)");
    }
}
