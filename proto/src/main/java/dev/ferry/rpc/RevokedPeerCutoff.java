package dev.ferry.rpc;

import dev.ferry.pki.Identity;
import dev.ferry.pki.RevocationList;
import dev.ferry.pki.RevocationSweep;
import dev.ferry.pki.RevocationWatch;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import java.math.BigInteger;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Revocation for connections already open. The handshake checks the revocation list (see {@link
 * IdentityTrustManager}), but daemons keep their channels for hours: a revoked agent, coordinator
 * or operator kept every connection it had. This server interceptor closes that gap:
 *
 * <ul>
 *   <li>every call is checked when it starts, so a revoked peer's next call on an old connection
 *       is refused ({@code UNAUTHENTICATED}, naming the revocation);
 *   <li>calls still open (migration lanes, consoles, watches) are ended within a {@link #SWEEP}
 *       of a new list being in force: the peer sees {@code UNAUTHENTICATED}, and the handler sees
 *       its call cancelled, as if the peer had gone, so it lets go of what the call held.
 * </ul>
 *
 * <p>The open calls are {@link EndableCalls}, as the health service's watches are.
 */
final class RevokedPeerCutoff implements ServerInterceptor {
    private static final Logger log = LoggerFactory.getLogger(RevokedPeerCutoff.class);

    /** How often the list is looked at (one stat) for calls already open. */
    static final long SWEEP_MS = 1000;

    /** The thread every server's and channel's sweep of the process shares: it stats a file a second. */
    static final String SWEEP_THREAD = "ferry-revocation-sweep";

    /** A sweep of open gRPC calls, as this interceptor and {@link RevokedServerCutoff} run them. */
    static RevocationSweep startSweep(Logger owner, Runnable sweep) {
        return new RevocationSweep(SWEEP_THREAD, Duration.ofMillis(SWEEP_MS), "open calls", owner, sweep).start();
    }

    private final RevocationWatch revocations;
    /** Open calls, each with its peer's certificate. */
    private final EndableCalls<X509Certificate> open = new EndableCalls<>();

    private BigInteger sweptNumber;
    /** Running while calls are open, so that an idle or discarded transport costs nothing. */
    private RevocationSweep sweeping;

    RevokedPeerCutoff(RevocationWatch revocations) {
        this.revocations = revocations;
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
        Optional<X509Certificate> peer =
                Callers.peerCertificate(call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION));
        if (peer.isEmpty()) {
            return next.startCall(call, headers); // Callers refuses a call without a certificate
        }
        Optional<Instant> revoked = revocations.revokedAt(peer.get());
        if (revoked.isPresent()) {
            call.close(Status.UNAUTHENTICATED.withDescription(reason(peer.get(), revoked.get())), new Metadata());
            return new ServerCall.Listener<>() {};
        }
        ServerCall.Listener<Q> listener = open.start(call, headers, next, peer.get());
        sweepWhileOpen();
        return listener;
    }

    private synchronized void sweepWhileOpen() {
        if (sweeping == null) {
            sweeping = startSweep(log, this::sweep);
        }
    }

    /** Ends the open calls of peers revoked by a list newer than the last one swept. */
    void sweep() {
        synchronized (this) {
            if (open.isEmpty()) {
                // Nothing to end; every handshake and call start still looks at the list.
                if (sweeping != null) {
                    sweeping.close();
                    sweeping = null;
                }
                return;
            }
        }
        Optional<RevocationList> list = revocations.list();
        if (list.isEmpty() || list.get().number().equals(sweptNumber)) {
            return;
        }
        sweptNumber = list.get().number();
        RevocationList l = list.get();
        open.end(peer -> l.revokedAt(peer)
                .map(at -> {
                    String why = reason(peer, at);
                    log.warn("ending an open call: {}", why);
                    return Status.UNAUTHENTICATED.withDescription(why);
                })
                .orElse(null));
    }

    static String reason(X509Certificate peer, Instant at) {
        String who = Identity.of(peer)
                .map(Object::toString)
                .orElse(peer.getSubjectX500Principal().getName());
        return "the certificate of " + who + " (serial " + RevocationList.serialOf(peer) + ") was revoked at " + at;
    }
}
