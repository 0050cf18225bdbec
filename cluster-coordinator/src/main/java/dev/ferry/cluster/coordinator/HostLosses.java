package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.policy.RestartPolicy;
import java.time.Duration;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * When this term saw each host go, on both clocks: the monotonic reading decides when the failover
 * margin has passed; the wall-clock one is shown to operators (and written into restart intents)
 * and decides nothing. A host this term did not see go (it went before the term began) counts from
 * the term's start: a new leader waits a whole margin again, which is conservative.
 */
final class HostLosses {
    /** One loss: the monotonic reading decides, the wall-clock one is for display. */
    record Loss(long nanoTime, long wallMillis) {}

    private final Clocks clocks;
    private final long termStartNanos;
    private final Map<String, Loss> lost = new ConcurrentHashMap<>();

    HostLosses(Clocks clocks) {
        this.clocks = clocks;
        this.termStartNanos = clocks.nanoTime();
    }

    /** {@code host} is gone now. */
    Loss lost(String host) {
        Loss l = new Loss(clocks.nanoTime(), clocks.wallMillis());
        lost.put(host, l);
        return l;
    }

    /** When this term saw {@code host} go (wall-clock ms, display only), or null. */
    Long lostAtMillis(String host) {
        Loss l = lost.get(host);
        return l == null ? null : l.wallMillis();
    }

    /** Hosts this term saw go. */
    Set<String> hosts() {
        return lost.keySet();
    }

    /** Has the failover margin passed since {@code host} went (or, if this term did not see it go, since the term began)? */
    boolean marginPassed(String host, Duration margin) {
        Loss l = lost.get(host);
        return RestartPolicy.marginPassed(l != null ? l.nanoTime() : termStartNanos, clocks.nanoTime(), margin);
    }
}
