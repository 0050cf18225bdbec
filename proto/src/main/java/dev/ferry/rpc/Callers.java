package dev.ferry.rpc;

import dev.ferry.pki.Identity;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.util.Optional;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;

/**
 * Who is calling: the identity in the caller's verified certificate, for the duration of a call.
 * Handlers that must check more than a role (a migration lane only from the source host the
 * prepare named) ask {@link #current()} or {@link #requireAgent}.
 */
public final class Callers {
    private static final Context.Key<Identity> IDENTITY = Context.key("ferry-caller");

    private Callers() {}

    /** The caller of the current call; empty on a plaintext server, where nobody is known. */
    public static Optional<Identity> current() {
        return Optional.ofNullable(IDENTITY.get());
    }

    /**
     * Why {@code caller} is not the agent of {@code hostId}, or empty when it is or when nothing is
     * known (a plaintext server checks nothing). Pure, so handlers can capture the caller once.
     */
    public static Optional<String> unlessAgent(Optional<Identity> caller, String hostId, String what) {
        if (caller.isEmpty()) {
            return Optional.empty();
        }
        Identity c = caller.get();
        if (c.role() == dev.ferry.pki.Role.AGENT && c.name().equals(hostId)) {
            return Optional.empty();
        }
        return Optional.of(what + " is for the agent of " + hostId + ", not " + c);
    }

    /** Whether the current caller holds {@code role} (false on plaintext servers: nobody is known). */
    public static boolean currentIs(dev.ferry.pki.Role role) {
        return current().map(c -> c.role() == role).orElse(false);
    }

    /** Reads the identity from the TLS session of each call (servers with mutual TLS). */
    static ServerInterceptor fromTlsSession() {
        return new ServerInterceptor() {
            @Override
            public <Q, R> ServerCall.Listener<Q> interceptCall(
                    ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
                Optional<Identity> who = identityOf(call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION));
                if (who.isEmpty()) {
                    // The handshake required a certificate of the cluster; a call without one did
                    // not come through it. Refuse rather than treat it as anyone.
                    call.close(
                            Status.UNAUTHENTICATED.withDescription("no verified client certificate"), new Metadata());
                    return new ServerCall.Listener<>() {};
                }
                return Contexts.interceptCall(Context.current().withValue(IDENTITY, who.get()), call, headers, next);
            }
        };
    }

    static Optional<Identity> identityOf(SSLSession session) {
        return peerCertificate(session).flatMap(Identity::of);
    }

    /** The peer's verified certificate in {@code session}; empty without one (or without TLS). */
    static Optional<X509Certificate> peerCertificate(SSLSession session) {
        if (session == null) {
            return Optional.empty();
        }
        try {
            Certificate[] chain = session.getPeerCertificates();
            return chain.length > 0 && chain[0] instanceof X509Certificate x ? Optional.of(x) : Optional.empty();
        } catch (SSLPeerUnverifiedException e) {
            return Optional.empty();
        }
    }
}
