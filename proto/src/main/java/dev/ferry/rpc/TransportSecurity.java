package dev.ferry.rpc;

import dev.ferry.pki.Credentials;
import java.util.Objects;

/**
 * How channels and servers authenticate. Every gRPC server and channel in Ferry is built by
 * {@link Transport}, which takes one of these, so securing the transport changes no caller.
 */
public sealed interface TransportSecurity {
    /**
     * No transport security: anyone who reaches a port may call anything. Only with an operator's
     * explicit {@code --insecure} (benchmarks comparing the cost, trusted lab networks), and every
     * daemon says so when it starts.
     */
    record Plaintext() implements TransportSecurity {}

    /**
     * TLS 1.3 with a certificate on both ends, both issued by the cluster's CA. Servers learn each
     * caller's {@link dev.ferry.pki.Identity} from its certificate (see {@link Callers}); channels
     * accept only the server a {@link PeerRequirement} names.
     */
    record MutualTls(Credentials credentials) implements TransportSecurity {
        public MutualTls {
            Objects.requireNonNull(credentials, "credentials");
        }
    }

    static TransportSecurity plaintext() {
        return new Plaintext();
    }

    static TransportSecurity mutualTls(Credentials credentials) {
        return new MutualTls(credentials);
    }
}
