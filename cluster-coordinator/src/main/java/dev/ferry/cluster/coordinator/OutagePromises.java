package dev.ferry.cluster.coordinator;

import dev.ferry.proto.coordinator.CoordinatorProto;
import dev.ferry.proto.coordinator.OutageAnswer;
import dev.ferry.proto.coordinator.OutageQuestion;
import dev.ferry.rpc.GrpcService;
import io.grpc.ServerServiceDefinition;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * This replica's side of "outage or cut off?" (the agents' side is {@code OutageWitnesses}): an
 * agent that lost ZooKeeper asks whether this replica can reach it. In contact: the agent alone is
 * cut off. Not in contact: this replica promises to make no restart decision for {@link #promise}
 * from now, and keeps that promise even if it regains ZooKeeper (or leadership) meanwhile, so an
 * agent holding every replica's promise may keep its guests running that long.
 *
 * <p>The same holds, unasked, while this replica itself is without ZooKeeper or was not running
 * (frozen: its process stopped, swapped out): agents that lost their sessions meanwhile may be
 * reconnecting to take their guests back, and a restart decided the moment this replica is back
 * would race them. So for {@link #promise} after either, it decides no restart ({@link #tick}).
 *
 * <p>Restart decisions consult {@link #restartsAllowedAt}: never before the last promise ends, and,
 * for a host whose loss this replica saw within the first {@code unknownWindow} after it started
 * (an agent cut off before it learned of this replica cannot have asked it), not before this
 * replica has run for the agents' longest outage hold. Monotonic clock throughout.
 */
public final class OutagePromises {
    private static final Logger log = LoggerFactory.getLogger(OutagePromises.class);
    static final GrpcService SERVICE = GrpcService.of(CoordinatorProto.getDescriptor(), "Witness");

    private volatile String replica;
    private final Duration promise;
    private final Duration outageHold;
    private final Duration unknownWindow;
    private final BooleanSupplier inContact;
    private final long startedAt;
    private final AtomicLong promisedUntil = new AtomicLong(Long.MIN_VALUE);
    private long lastTick = Long.MIN_VALUE;
    /** A gap between ticks longer than this means the process did not run: it was frozen. */
    static final Duration FROZEN_GAP = Duration.ofSeconds(1);

    /**
     * @param replica this replica's endpoint, as in the leader latch (or "" until it is known)
     * @param promise how long each answer "no contact" binds this replica (half an agent session)
     * @param outageHold the longest an agent rides out an outage on promises (its --outage-hold)
     * @param unknownWindow how long after this replica starts an agent may not yet know of it
     * @param inContact whether this replica's ZooKeeper connection is up now
     */
    public OutagePromises(
            String replica, Duration promise, Duration outageHold, Duration unknownWindow, BooleanSupplier inContact) {
        this.replica = replica;
        this.promise = promise;
        this.outageHold = outageHold;
        this.unknownWindow = unknownWindow;
        this.inContact = inContact;
        this.startedAt = System.nanoTime();
    }

    /** Names this replica in answers, once its endpoint is known. */
    void replica(String endpoint) {
        replica = endpoint;
    }

    /**
     * Defaults from the failover margin, which is T/5 of the agents' session timeout T unless
     * configured: promises of T/2 (at least a second).
     */
    static OutagePromises forMargin(Duration failoverMargin, BooleanSupplier inContact) {
        Duration t = failoverMargin.multipliedBy(5);
        return new OutagePromises(
                "",
                t.dividedBy(2).compareTo(Duration.ofSeconds(1)) < 0 ? Duration.ofSeconds(1) : t.dividedBy(2),
                Duration.ofMinutes(2),
                // Agents ask replicas by endpoint: a replica restarted at its address is known to
                // them. Only one added at a new address during an outage is not (ARCHITECTURE.md,
                // limits); holding every failover after a coordinator start back for that would cost
                // more than it protects, so no window.
                Duration.ZERO,
                inContact);
    }

    /**
     * Called every 100 ms or so: while out of contact, and once after this process was frozen,
     * this replica promises itself what it would promise an agent that asked.
     */
    synchronized void tick() {
        long now = System.nanoTime();
        boolean frozen = lastTick != Long.MIN_VALUE && now - lastTick > FROZEN_GAP.toNanos();
        long gapMillis = lastTick == Long.MIN_VALUE ? 0 : (now - lastTick) / 1_000_000;
        lastTick = now;
        if (frozen) {
            log.warn(
                    "{}: this process did not run for {} ms; no restart decision for {} ms",
                    replica,
                    gapMillis,
                    promise.toMillis());
        }
        if (frozen || !inContact.getAsBoolean()) {
            promisedUntil.accumulateAndGet(now + promise.toNanos(), Math::max);
        }
    }

    /** Answers one agent; a "no contact" answer is a promise this replica keeps. */
    public OutageAnswer attest(OutageQuestion q) {
        if (inContact.getAsBoolean()) {
            return OutageAnswer.newBuilder()
                    .setReplica(replica)
                    .setInContact(true)
                    .build();
        }
        long until = System.nanoTime() + promise.toNanos();
        long was = promisedUntil.getAndAccumulate(until, Math::max);
        if (was == Long.MIN_VALUE || was - System.nanoTime() < 0) {
            log.warn(
                    "{}: {} asks during a loss of ZooKeeper; promising no restart decision for {} ms",
                    replica,
                    q.getHostId(),
                    promise.toMillis());
        }
        return OutageAnswer.newBuilder()
                .setReplica(replica)
                .setInContact(false)
                .setPromiseMs(promise.toMillis())
                .build();
    }

    /**
     * The earliest moment (System.nanoTime) this replica may decide to restart a VM of a host whose
     * loss it saw at {@code hostLostAtNanos}.
     */
    public long restartsAllowedAt(long hostLostAtNanos) {
        long promised = promisedUntil.get();
        // startedAt is in the past for every caller: "now" when nothing was promised (no MIN_VALUE,
        // whose difference with a clock reading overflows).
        long at = promised == Long.MIN_VALUE ? startedAt : Math.max(startedAt, promised);
        if (hostLostAtNanos - (startedAt + unknownWindow.toNanos()) < 0) {
            at = Math.max(at, startedAt + outageHold.toNanos());
        }
        return at;
    }

    private final java.util.Map<String, Long> firstAsked = new java.util.concurrent.ConcurrentHashMap<>();

    /**
     * The promises as a restart gate. A host's loss is dated by the first time a restart of one of
     * its VMs is asked about here (after the failover margin, so later than the loss itself: the
     * window of {@link #forMargin} covers the margin too).
     */
    RestartGate gate() {
        return (host, vm, nowNanos) -> {
            long lost = firstAsked.computeIfAbsent(host, h -> nowNanos);
            long at = restartsAllowedAt(lost);
            if (nowNanos - at >= 0) {
                if (firstAsked.size() > 10_000) {
                    firstAsked.clear(); // a bound; a host asked about again is dated afresh, later
                }
                return RestartGate.NOW;
            }
            return new RestartGate.NotBefore(
                    at,
                    promisedUntil.get() - nowNanos > 0
                            ? "this coordinator promised agents riding out a ZooKeeper outage no restart meanwhile"
                            : "this coordinator started moments ago; " + host
                                    + "'s agent may be riding out an outage without knowing of it");
        };
    }

    /** The Witness service, served beside the coordinator API. */
    public ServerServiceDefinition definition() {
        return SERVICE.bind()
                .unary("AttestOutage", OutageQuestion.class, OutageAnswer.class, (q, out) -> {
                    out.onNext(attest(q));
                    out.onCompleted();
                })
                .build();
    }
}
