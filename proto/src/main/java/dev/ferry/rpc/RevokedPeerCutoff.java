package dev.ferry.rpc;

import dev.ferry.pki.Identity;
import dev.ferry.pki.RevocationList;
import dev.ferry.pki.RevocationWatch;
import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Grpc;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.Status;
import java.math.BigInteger;
import java.security.cert.Certificate;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
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
 * <p>Ending a call from the sweeper's thread needs the call's methods serialized: {@link Guarded}
 * does that, and drops what the handler sends after the cut.
 */
final class RevokedPeerCutoff implements ServerInterceptor {
    private static final Logger log = LoggerFactory.getLogger(RevokedPeerCutoff.class);

    /** How often the list is looked at (one stat) for calls already open. */
    static final long SWEEP_MS = 1000;

    /** One thread for every server of the process: it stats a file a second. */
    private static final ScheduledExecutorService SWEEPER = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("ferry-revocation-sweep").factory());

    private final RevocationWatch revocations;
    private final Set<Guarded<?, ?>> open = ConcurrentHashMap.newKeySet();
    private BigInteger sweptNumber;
    /** Scheduled while calls are open, so that an idle or discarded transport costs nothing. */
    private java.util.concurrent.ScheduledFuture<?> sweeping;

    RevokedPeerCutoff(RevocationWatch revocations) {
        this.revocations = revocations;
    }

    private synchronized void track(Guarded<?, ?> g) {
        open.add(g);
        if (sweeping == null) {
            sweeping = SWEEPER.scheduleWithFixedDelay(this::sweepQuietly, SWEEP_MS, SWEEP_MS, TimeUnit.MILLISECONDS);
        }
    }

    @Override
    public <Q, R> ServerCall.Listener<Q> interceptCall(
            ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
        X509Certificate peer = leaf(call.getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION));
        if (peer == null) {
            return next.startCall(call, headers); // Callers refuses a call without a certificate
        }
        Optional<Instant> revoked = revocations.revokedAt(peer);
        if (revoked.isPresent()) {
            call.close(Status.UNAUTHENTICATED.withDescription(reason(peer, revoked.get())), new Metadata());
            return new ServerCall.Listener<>() {};
        }
        Guarded<Q, R> guarded = new Guarded<>(call, peer);
        track(guarded);
        ServerCall.Listener<Q> listener;
        try {
            listener = next.startCall(guarded, headers);
        } catch (RuntimeException e) {
            open.remove(guarded);
            throw e;
        }
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
            @Override
            public void onComplete() {
                open.remove(guarded);
                if (guarded.cut()) {
                    // Closed by the cut, not by the handler: to the handler the peer is gone.
                    super.onCancel();
                } else {
                    super.onComplete();
                }
            }

            @Override
            public void onCancel() {
                open.remove(guarded);
                super.onCancel();
            }
        };
    }

    /** Calls open now (tests). */
    int openCalls() {
        return open.size();
    }

    private void sweepQuietly() {
        try {
            sweep();
        } catch (RuntimeException e) {
            log.error("cannot check open calls against the revocation list: {}", e.toString());
        }
    }

    /** Ends the open calls of peers revoked by a list newer than the last one swept. */
    void sweep() {
        synchronized (this) {
            if (open.isEmpty()) {
                // Nothing to end; every handshake and call start still looks at the list.
                if (sweeping != null) {
                    sweeping.cancel(false);
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
        for (Guarded<?, ?> g : open) {
            Optional<Instant> revoked = list.get().revokedAt(g.peer);
            if (revoked.isPresent()) {
                String why = reason(g.peer, revoked.get());
                if (g.cutOff(why)) {
                    log.warn(
                            "ended an open call of {}: {}",
                            g.getMethodDescriptor().getFullMethodName(),
                            why);
                }
            }
        }
    }

    private static String reason(X509Certificate peer, Instant at) {
        String who = Identity.of(peer)
                .map(Object::toString)
                .orElse(peer.getSubjectX500Principal().getName());
        return "the certificate of " + who + " (serial " + RevocationList.serialOf(peer) + ") was revoked at " + at;
    }

    private static X509Certificate leaf(SSLSession session) {
        if (session == null) {
            return null;
        }
        try {
            Certificate[] chain = session.getPeerCertificates();
            return chain.length > 0 && chain[0] instanceof X509Certificate x ? x : null;
        } catch (SSLPeerUnverifiedException e) {
            return null;
        }
    }

    /** A call whose methods are serialized, so that the sweeper may close it beside the handler. */
    private static final class Guarded<Q, R> extends ForwardingServerCall.SimpleForwardingServerCall<Q, R> {
        final X509Certificate peer;
        private boolean closed;
        private volatile boolean cut;

        Guarded(ServerCall<Q, R> call, X509Certificate peer) {
            super(call);
            this.peer = peer;
        }

        boolean cut() {
            return cut;
        }

        /** Ends the call for a revocation; false when it had ended already. */
        synchronized boolean cutOff(String why) {
            if (closed) {
                return false;
            }
            closed = true;
            cut = true;
            super.close(Status.UNAUTHENTICATED.withDescription(why), new Metadata());
            return true;
        }

        @Override
        public synchronized void close(Status status, Metadata trailers) {
            if (closed) {
                return; // cut off meanwhile: the handler's own end is moot
            }
            closed = true;
            super.close(status, trailers);
        }

        @Override
        public synchronized void sendHeaders(Metadata headers) {
            if (!closed) {
                super.sendHeaders(headers);
            }
        }

        @Override
        public synchronized void sendMessage(R message) {
            if (!closed) {
                super.sendMessage(message);
            }
        }

        @Override
        public synchronized void request(int numMessages) {
            if (!closed) {
                super.request(numMessages);
            }
        }

        @Override
        public synchronized void setMessageCompression(boolean enabled) {
            super.setMessageCompression(enabled);
        }

        @Override
        public synchronized void setCompression(String compressor) {
            super.setCompression(compressor);
        }
    }
}
