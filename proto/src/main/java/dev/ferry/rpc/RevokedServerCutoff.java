package dev.ferry.rpc;

import dev.ferry.pki.RevocationList;
import dev.ferry.pki.RevocationSweep;
import dev.ferry.pki.RevocationWatch;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Revocation of a server this process is already connected to: the client's half of {@link
 * RevokedPeerCutoff}. The handshake refuses a revoked server (see {@link IdentityTrustManager}),
 * but channels live for hours, so a revoked agent or coordinator kept its peers' open channels to
 * it, and a source kept streaming guest memory to a destination revoked mid-migration. On every
 * channel {@link Transport} builds with mutual TLS:
 *
 * <ul>
 *   <li>each channel remembers the certificate its connection last answered with (gRPC tells a
 *       call its connection's TLS session once the server's headers arrive);
 *   <li>while the channel exists, the list is looked at once a {@link RevokedPeerCutoff#SWEEP_MS}
 *       and the open calls to a server it revokes are ended: the caller's listener sees {@code
 *       UNAUTHENTICATED} naming the revocation, and what it sends afterwards is dropped, as is
 *       whatever that server had already answered;
 *   <li>a call that starts on a channel whose remembered server is revoked ends the same way at
 *       once, before the caller sends anything but the call's headers;
 *   <li>either way the channel is sent idle, which closes its connection to that server once no
 *       call uses it; its next call connects anew, and that handshake refuses the server (client
 *       contexts never resume a session, see {@link TlsContexts#withoutResumption}).
 * </ul>
 */
final class RevokedServerCutoff {
    private static final Logger log = LoggerFactory.getLogger(RevokedServerCutoff.class);

    private final RevocationWatch revocations;
    /** Open calls of every channel of this transport. */
    private final Set<Watched<?, ?>> open = ConcurrentHashMap.newKeySet();
    /** The channels of this transport, until the sweep finds them shut down. */
    private final Set<ChannelCutoff> channels = ConcurrentHashMap.newKeySet();

    /** Running while channels or calls exist, so that a transport without them costs nothing. */
    private RevocationSweep sweeping;

    RevokedServerCutoff(RevocationWatch revocations) {
        this.revocations = revocations;
    }

    /**
     * The interceptor of one channel. It must be the innermost (the first added to the builder), so
     * that it sees the real call's transport attributes, and be {@link ChannelCutoff#bind bound}
     * to the channel once it is built, so that it can send it idle.
     */
    ChannelCutoff newChannel() {
        return new ChannelCutoff();
    }

    final class ChannelCutoff implements ClientInterceptor {
        private volatile ManagedChannel channel;
        /**
         * The certificate of the server this channel's connection last answered with (its channels
         * have one address, so one connection at a time); null until a call learns it, and again
         * once the channel is sent to reconnect. A call whose own TLS session is not known yet
         * (gRPC knows it once the server's headers arrive) is judged by it.
         */
        private volatile X509Certificate server;

        void bind(ManagedChannel built) {
            this.channel = built;
            channels.add(this);
            sweepWhileOpen();
        }

        @Override
        public <Q, R> ClientCall<Q, R> interceptCall(MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
            return new Watched<>(next.newCall(method, options), this);
        }

        /** Drops the channel's connections once their calls have ended; the next call handshakes anew. */
        void reconnect() {
            server = null;
            ManagedChannel c = channel;
            if (c != null) {
                c.enterIdle();
            }
        }

        boolean shutDown() {
            ManagedChannel c = channel;
            return c != null && c.isShutdown();
        }
    }

    private void sweepWhileOpen() {
        synchronized (this) {
            if (sweeping == null) {
                sweeping = RevokedPeerCutoff.startSweep(log, this::sweep);
            }
        }
    }

    /**
     * Sends every channel connected to a server the list in force revokes to reconnect, and ends
     * the open calls to such servers. Every call and channel is looked at each time (a map lookup
     * each), not only when the list changes: a call that was still waiting for its connection at
     * the last sweep has a server only now.
     */
    void sweep() {
        synchronized (this) {
            channels.removeIf(ChannelCutoff::shutDown);
            if (open.isEmpty() && channels.isEmpty()) {
                if (sweeping != null) {
                    sweeping.close();
                    sweeping = null;
                }
                return;
            }
        }
        Optional<RevocationList> list = revocations.list();
        if (list.isEmpty()) {
            return;
        }
        Set<ChannelCutoff> toReconnect = new java.util.HashSet<>();
        Set<String> reasons = new java.util.TreeSet<>();
        for (Watched<?, ?> call : open) {
            Optional<String> why = call.revokedServer(list.get());
            if (why.isPresent() && call.endFromOutside(why.get())) {
                toReconnect.add(call.owner);
                reasons.add(why.get());
            }
        }
        for (ChannelCutoff c : channels) {
            X509Certificate server = c.server;
            if (server != null && list.get().revokedAt(server).isPresent()) {
                toReconnect.add(c);
            }
        }
        reasons.forEach(r -> log.warn("ended open calls to a revoked server: {}", r));
        toReconnect.forEach(ChannelCutoff::reconnect);
    }

    private String reason(X509Certificate server, Instant at) {
        return RevokedPeerCutoff.reason(server, at) + " (" + revocations.file() + "); this call to it was ended";
    }

    /**
     * One call on a channel. Ending it from the sweeper's thread must not race the caller's
     * sendMessage or halfClose (gRPC throws on those after a cancel), so those are serialized with
     * the end and dropped after it; the caller learns of the end from its listener.
     */
    private final class Watched<Q, R> extends ForwardingClientCall.SimpleForwardingClientCall<Q, R> {
        final ChannelCutoff owner;
        /** Why the call was ended from here; null while it is not. */
        private volatile String endedWhy;

        Watched(ClientCall<Q, R> call, ChannelCutoff owner) {
            super(call);
            this.owner = owner;
        }

        @Override
        public void start(Listener<R> listener, Metadata headers) {
            // Remembered before it starts: a call that fails at once may be closed before start returns.
            open.add(this);
            try {
                startWatching(listener, headers);
            } catch (RuntimeException e) {
                open.remove(this);
                throw e;
            }
            sweepWhileOpen();
            // A channel already connected knows its server, so a call to a revoked one ends before
            // it sends anything but its headers; a call that waits for a new connection is checked
            // by that connection's handshake.
            checkNow();
        }

        private void startWatching(Listener<R> listener, Metadata headers) {
            super.start(
                    new ForwardingClientCallListener.SimpleForwardingClientCallListener<R>(listener) {
                        @Override
                        public void onHeaders(Metadata h) {
                            // gRPC knows the call's connection (and so its server) for sure only now.
                            learnServer();
                            checkNow();
                            super.onHeaders(h);
                        }

                        @Override
                        public void onClose(Status status, Metadata trailers) {
                            open.remove(Watched.this);
                            String why = endedWhy;
                            if (why == null) {
                                // (An ended call's server is the one its channel was sent to forget.)
                                learnServer();
                                super.onClose(status, trailers);
                            } else {
                                // Even an answer that had already arrived: it is a revoked server's.
                                super.onClose(Status.UNAUTHENTICATED.withDescription(why), new Metadata());
                            }
                        }

                        @Override
                        public void onMessage(R message) {
                            if (endedWhy == null) {
                                super.onMessage(message);
                            }
                        }
                    },
                    headers);
        }

        private void learnServer() {
            Callers.peerCertificate(getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION))
                    .ifPresent(c -> owner.server = c);
        }

        private void checkNow() {
            Optional<String> why = revocations.list().flatMap(this::revokedServer);
            if (why.isPresent() && endFromOutside(why.get())) {
                log.warn("ended a call to a revoked server: {}", why.get());
                owner.reconnect();
            }
        }

        /**
         * Why this call's server is revoked by {@code list}; empty while it is not, or while neither
         * the call nor its channel knows the server (a new connection's handshake checks it then).
         */
        Optional<String> revokedServer(RevocationList list) {
            Optional<X509Certificate> server = Callers.peerCertificate(
                            getAttributes().get(Grpc.TRANSPORT_ATTR_SSL_SESSION))
                    .or(() -> Optional.ofNullable(owner.server));
            return server.flatMap(s -> list.revokedAt(s).map(at -> reason(s, at)));
        }

        synchronized boolean endFromOutside(String why) {
            if (endedWhy != null) {
                return false;
            }
            endedWhy = why;
            super.cancel(why, null);
            return true;
        }

        @Override
        public synchronized void sendMessage(Q message) {
            if (endedWhy == null) {
                super.sendMessage(message);
            }
        }

        @Override
        public synchronized void halfClose() {
            if (endedWhy == null) {
                super.halfClose();
            }
        }

        @Override
        public synchronized void cancel(String message, Throwable cause) {
            if (endedWhy == null) {
                super.cancel(message, cause);
            }
        }

        @Override
        public boolean isReady() {
            // A caller waiting for readiness to send learns of the end from its listener instead.
            return endedWhy == null && super.isReady();
        }
    }
}
