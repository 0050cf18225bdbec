package dev.ferry.rpc;

/**
 * How channels and servers authenticate. Every gRPC server and channel in Ferry is built by
 * {@link Transport}, which takes one of these, so securing the transport changes no caller.
 */
public sealed interface TransportSecurity {
    /** No transport security: loopback and trusted lab networks only. */
    record Plaintext() implements TransportSecurity {}

    static TransportSecurity plaintext() {
        return new Plaintext();
    }
}
