package dev.ferry.cluster.coordinator;

import java.util.Objects;

/**
 * The one place every restart of a VM away from a host that is gone asks whether it may happen
 * now: {@link Failover}'s restarts (a host's session ended, a VM died in place) and a start that
 * would move a VM off an owner that is not alive. The cluster's timing rules for failover (the
 * failover margin after a session expired) come first; a gate adds rules of its own, such as "not
 * while the owner may still run the VM": during a ZooKeeper outage agents that lost ZooKeeper keep
 * their VMs on the strength of written promises from coordinator replicas that no restart happens
 * before some deadline, and a gate that knows those promises holds restarts until they lapse.
 *
 * <p>A held restart stays open (its intent PENDING, the VM's record saying why) and is asked again
 * on every reconcile pass. The default allows everything.
 */
@FunctionalInterface
public interface RestartGate {
    /** What the gate says of one restart. */
    sealed interface Verdict permits Now, NotBefore {}

    /** The restart may go ahead. */
    record Now() implements Verdict {}

    /**
     * Not before {@code nanoTime} (a {@link System#nanoTime()} reading of this process), because
     * {@code reason} (one line for operators, without the time: it is shown while the restart waits).
     */
    record NotBefore(long nanoTime, String reason) implements Verdict {
        public NotBefore {
            Objects.requireNonNull(reason, "reason");
        }
    }

    Verdict NOW = new Now();

    /** Every restart may go ahead as soon as the failover rules allow. */
    RestartGate ALWAYS = (host, vm, nowNanos) -> NOW;

    /**
     * May {@code vm}, whose owner {@code host} is gone (or does not run it), be restarted elsewhere
     * at {@code nowNanos}?
     */
    Verdict check(String host, String vm, long nowNanos);
}
