package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.policy.RestartPolicy;
import java.util.ArrayList;
import java.util.List;

/**
 * The cluster-wide limit of restarts in flight (within one leader's term): a restart takes a slot
 * before it decides anything and gives it back when its run ends (the VM runs again, the restart
 * failed or waits). Waiting restarts get slots in {@link RestartPolicy} order (priority, then
 * size), whatever order they asked in, so that after an outage that took many hosts the most
 * important VMs go first and the survivors boot a few guests at a time.
 */
final class RestartSlots {
    private final int limit;
    private final List<RestartPolicy.Candidate> waiting = new ArrayList<>();
    private int inFlight;

    RestartSlots(int limit) {
        if (limit < 1) {
            throw new IllegalArgumentException("the limit of restarts in flight must be at least 1, got " + limit);
        }
        this.limit = limit;
    }

    /** Waits until {@code c} may go (interrupted: the term ends). */
    synchronized void acquire(RestartPolicy.Candidate c) throws InterruptedException {
        waiting.add(c);
        try {
            while (!admitted(c)) {
                wait();
            }
            inFlight++;
        } finally {
            waiting.remove(c);
            notifyAll(); // the next in order may be admitted now
        }
    }

    private boolean admitted(RestartPolicy.Candidate c) {
        for (RestartPolicy.Candidate a : RestartPolicy.admit(waiting, inFlight, limit)) {
            if (a == c) {
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
