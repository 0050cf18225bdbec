package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.policy.RestartPolicy;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The cluster-wide limit of restarts in flight (within one leader's term): a restart takes a slot
 * before it decides anything and gives it back when its run ends (the VM runs again, the restart
 * failed or waits). Waiting restarts get slots in {@link RestartPolicy} order (priority, then
 * size), whatever order they asked in, so that after an outage that took many hosts the most
 * important VMs go first and the survivors boot a few guests at a time.
 */
final class RestartSlots {
    private final int limit;
    /** Restarts waiting for a slot, by intent id: arrived, or announced by a plan and on their way. */
    private final Map<String, RestartPolicy.Candidate> waiting = new LinkedHashMap<>();

    private int inFlight;

    RestartSlots(int limit) {
        if (limit < 1) {
            throw new IllegalArgumentException("the limit of restarts in flight must be at least 1, got " + limit);
        }
        this.limit = limit;
    }

    /**
     * A plan is about to start the restart {@code intentId}: it waits from now, so that the
     * restarts of one plan are admitted in their order, not in the order their runs happen to
     * arrive. The plan {@link #forget}s it when the run ends without asking.
     */
    synchronized void expect(String intentId, RestartPolicy.Candidate c) {
        waiting.putIfAbsent(intentId, c);
    }

    /** The restart {@code intentId} will not ask (its run ended, or never began). */
    synchronized void forget(String intentId) {
        if (waiting.remove(intentId) != null) {
            notifyAll();
        }
    }

    /** Waits until the restart {@code intentId} may go (interrupted: the term ends). */
    synchronized void acquire(String intentId, RestartPolicy.Candidate c) throws InterruptedException {
        waiting.putIfAbsent(intentId, c);
        try {
            while (!admitted(intentId)) {
                wait();
            }
            inFlight++;
        } finally {
            waiting.remove(intentId);
            notifyAll(); // the next in order may be admitted now
        }
    }

    private boolean admitted(String intentId) {
        RestartPolicy.Candidate mine = waiting.get(intentId);
        for (RestartPolicy.Candidate a : RestartPolicy.admit(waiting.values(), inFlight, limit)) {
            if (a == mine) {
                return true;
            }
        }
        return false;
    }

    synchronized void release() {
        inFlight--;
        notifyAll();
    }

    synchronized int inFlight() {
        return inFlight;
    }

    int limit() {
        return limit;
    }
}
