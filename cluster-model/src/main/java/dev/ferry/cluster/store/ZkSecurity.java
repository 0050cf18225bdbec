package dev.ferry.cluster.store;

import dev.ferry.pki.Credentials;
import java.util.Objects;

/**
 * How a Ferry process talks to ZooKeeper, chosen once and passed to {@link ZkClients}: every
 * Curator client it builds then connects, authenticates and sets ACLs the same way.
 */
public sealed interface ZkSecurity {
    /**
     * Plaintext, unauthenticated, and the nodes Ferry creates are open to anyone (ZooKeeper's
     * {@code world:anyone}): only for clusters run with {@code --insecure}, like the gRPC side.
     */
    record Plaintext() implements ZkSecurity {}

    /**
     * TLS 1.3 to the ensemble's secure client port with {@code credentials} as the client
     * certificate (ZooKeeper's x509 authentication, see {@link ZkTls}), and every node Ferry
     * creates carries the ACLs of {@link ZkAcls}: only the cluster's roles, each with what it
     * needs.
     */
    record X509(Credentials credentials) implements ZkSecurity {
        public X509 {
            Objects.requireNonNull(credentials, "credentials");
        }
    }

    static ZkSecurity plaintext() {
        return new Plaintext();
    }

    static ZkSecurity x509(Credentials credentials) {
        return new X509(credentials);
    }
}
