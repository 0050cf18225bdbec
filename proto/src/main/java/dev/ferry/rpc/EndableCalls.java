package dev.ferry.rpc;

import io.grpc.ForwardingServerCall;
import io.grpc.ForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.Status;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;

/**
 * Open server calls that something other than their handler may end: the health service's
 * Watch calls at shutdown ({@link ServingHealth}), a revoked peer's calls ({@link
 * RevokedPeerCutoff}). Each call is remembered with a tag (what the ender decides by) from its
 * start until it ends.
 *
 * <p>Ending a call from another thread needs its methods serialized with the handler's: the
 * wrapper does that, and drops what the handler sends after the end. The handler then sees its
 * call cancelled, as if the peer had gone (gRPC would otherwise tell it "completed"), so that
 * handlers that let go of resources on cancel do so.
 */
final class EndableCalls<T> {
    private final Set<Endable<?, ?, T>> open = ConcurrentHashMap.newKeySet();

    /** Starts {@code call} through {@code next}, remembered with {@code tag} while it is open. */
    <Q, R> ServerCall.Listener<Q> start(ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next, T tag) {
        Endable<Q, R, T> endable = new Endable<>(call, tag);
        open.add(endable);
        ServerCall.Listener<Q> listener;
        try {
            listener = next.startCall(endable, headers);
        } catch (RuntimeException e) {
            open.remove(endable);
            throw e;
        }
        return new ForwardingServerCallListener.SimpleForwardingServerCallListener<>(listener) {
            @Override
            public void onComplete() {
                open.remove(endable);
                if (endable.endedFromOutside) {
                    super.onCancel();
                } else {
                    super.onComplete();
                }
            }

            @Override
            public void onCancel() {
                open.remove(endable);
                super.onCancel();
            }
        };
    }

    boolean isEmpty() {
        return open.isEmpty();
    }

    /**
     * Ends each open call for which {@code why} gives a status (null: leave it open); returns how
     * many it ended (calls that had ended meanwhile do not count).
     */
    int end(Function<T, Status> why) {
        int ended = 0;
        for (Endable<?, ?, T> c : open) {
            Status s = why.apply(c.tag);
            if (s != null && c.endFromOutside(s)) {
                ended++;
            }
        }
        return ended;
    }

    private static final class Endable<Q, R, T> extends ForwardingServerCall.SimpleForwardingServerCall<Q, R> {
        final T tag;
        private boolean closed;
        private volatile boolean endedFromOutside;

        Endable(ServerCall<Q, R> call, T tag) {
            super(call);
            this.tag = tag;
        }

        synchronized boolean endFromOutside(Status status) {
            if (closed) {
                return false;
            }
            closed = true;
            endedFromOutside = true;
            super.close(status, new Metadata());
            return true;
        }

        @Override
        public synchronized void close(Status status, Metadata trailers) {
            if (!closed) {
                closed = true;
                super.close(status, trailers);
            }
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
