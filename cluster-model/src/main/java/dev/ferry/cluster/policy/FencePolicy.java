package dev.ferry.cluster.policy;

import java.time.Duration;

/**
 * When a host that lost contact with ZooKeeper must kill its VMs, and when the coordinator may
 * start them elsewhere, from one figure: the session timeout T that ZooKeeper granted.
 *
 * <p>The facts it rests on (ZooKeeper 3.9 client and server):
 * <ul>
 *   <li>The client declares its connection lost (Curator SUSPENDED) when it has heard nothing
 *       from its server for 2T/3 (its read timeout). Its last message from the server followed
 *       the server's last sight of the client, so SUSPENDED comes at least 2T/3 after the
 *       server last saw the client.
 *   <li>The server expires the session no earlier than T after it last saw the client; only
 *       then do the host's ephemeral nodes ({@code /hosts/<h>}, its run locks) vanish.
 * </ul>
 *
 * <p>So from SUSPENDED at most T/3 remain before the session can expire. The agent fences T/6
 * after SUSPENDED (at 5T/6 counted from the last contact, on a monotonic clock), which leaves T/6
 * for the kill itself and for scheduling delays; the coordinator adds its failover margin after
 * it sees the session expire.
 *
 * <p>That is the worst case, when SUSPENDED comes from silence. When it comes from a broken
 * connection (a ZooKeeper server restarting), the last contact is recent and the session has
 * longer to live: the agent probes ZooKeeper every T/6, and a probe that was answered proves the
 * server saw the session no earlier than the moment the probe was sent. So the deadline is the
 * later of SUSPENDED + T/6 and (last answered probe sent) + 5T/6: both leave T/6 before the
 * earliest possible expiry, and the second gives a reconnection to another server time to
 * happen instead of a needless fence ({@link #fenceDeadline}). A host that is partitioned therefore has killed its VMs
 * {@code T/6 + margin} before any other host may start them; and no other host can start them
 * before the session ends anyway, because their run locks live until then.
 *
 * <p>What it cannot cover: a host whose agent process is frozen (not killed) for longer than
 * that slack while its hypervisor processes keep running. That needs a watchdog below the agent
 * (docs/ARCHITECTURE.md, "Cluster", limits).
 */
public final class FencePolicy {
    private FencePolicy() {}

    /** How long after SUSPENDED a host kills its VMs if it has not reconnected: T/6. */
    public static Duration fenceDelay(Duration sessionTimeout) {
        check(sessionTimeout);
        return Duration.ofMillis(sessionTimeout.toMillis() / 6);
    }

    /**
     * How long a guest's lease lasts from the send time of the last probe ZooKeeper answered:
     * 5T/6. The server saw the session no earlier than that send time, so it cannot expire the
     * session (and the coordinator cannot restart the VM elsewhere) before send time + T (+ the
     * failover margin); the guest stops T/6 before that at the latest, without the agent.
     */
    public static Duration leaseValidity(Duration sessionTimeout) {
        check(sessionTimeout);
        return sessionTimeout.minus(fenceDelay(sessionTimeout));
    }

    /** How often an agent proves its session is alive, to push its fence deadline out: T/6. */
    public static Duration probeInterval(Duration sessionTimeout) {
        return fenceDelay(sessionTimeout);
    }

    /**
     * When a host that went SUSPENDED at {@code suspendedAtNanos} must have fenced, given that a
     * probe sent at {@code lastAnsweredProbeSentNanos} (monotonic nanos; {@code Long.MIN_VALUE} if
     * none) was answered: the later of SUSPENDED + T/6 and that send time + 5T/6.
     */
    public static long fenceDeadline(Duration sessionTimeout, long suspendedAtNanos, long lastAnsweredProbeSentNanos) {
        long worstCase = suspendedAtNanos + fenceDelay(sessionTimeout).toNanos();
        if (lastAnsweredProbeSentNanos == Long.MIN_VALUE) {
            return worstCase;
        }
        long fromProbe = lastAnsweredProbeSentNanos
                + sessionTimeout.toNanos()
                - fenceDelay(sessionTimeout).toNanos();
        return Math.max(worstCase, fromProbe);
    }

    /**
     * The coordinator's wait between seeing a host's session expire and restarting its VMs,
     * unless configured: T/5, at least 500 ms.
     */
    public static Duration defaultFailoverMargin(Duration sessionTimeout) {
        check(sessionTimeout);
        Duration fifth = Duration.ofMillis(sessionTimeout.toMillis() / 5);
        return fifth.compareTo(Duration.ofMillis(500)) < 0 ? Duration.ofMillis(500) : fifth;
    }

    /**
     * The worst-case timeline after a host's last contact with ZooKeeper at 0.
     *
     * @param suspended the host's client gives up on its connection (2T/3)
     * @param fence the host kills its VMs (5T/6)
     * @param expiry the session may expire, the earliest the coordinator can learn of it (T)
     * @param restart the coordinator may restart the VMs elsewhere (T + margin)
     * @param slack time between the fence and the earliest restart (T/6 + margin)
     */
    public record Timeline(Duration suspended, Duration fence, Duration expiry, Duration restart, Duration slack) {}

    public static Timeline timeline(Duration sessionTimeout, Duration failoverMargin) {
        check(sessionTimeout);
        if (failoverMargin.isNegative()) {
            throw new IllegalArgumentException("failover margin must not be negative");
        }
        Duration suspended = Duration.ofMillis(sessionTimeout.toMillis() * 2 / 3);
        Duration fence = suspended.plus(fenceDelay(sessionTimeout));
        Duration restart = sessionTimeout.plus(failoverMargin);
        return new Timeline(suspended, fence, sessionTimeout, restart, restart.minus(fence));
    }

    private static void check(Duration sessionTimeout) {
        if (sessionTimeout.toMillis() < 1000) {
            throw new IllegalArgumentException(
                    "session timeout must be at least 1 s, got " + sessionTimeout.toMillis() + " ms");
        }
    }
}
