package dev.ferry.agent.cluster;

import dev.ferry.proto.coordinator.CoordinatorProto;
import dev.ferry.proto.coordinator.OutageAnswer;
import dev.ferry.proto.coordinator.OutageQuestion;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.GrpcService;
import dev.ferry.rpc.PeerRequirement;
import dev.ferry.rpc.Transport;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.MethodDescriptor;
import io.grpc.stub.ClientCalls;
import java.io.Closeable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The agent's side of "is this an outage or am I cut off?": asks every coordinator replica it
 * knows (from the leader latch, read while it had ZooKeeper) whether the replica can reach
 * ZooKeeper. Only coordinators restart VMs, so if every one of them can neither reach ZooKeeper
 * nor, by its promise, decide a restart for a while, nobody can start this host's VMs elsewhere
 * meanwhile, and its guests may run on: {@link Verdict#OUTAGE}. One replica in contact means
 * this host alone is cut off ({@link Verdict#ISOLATED}); a replica that does not answer leaves it
 * unproven ({@link Verdict#UNKNOWN}), and then the fence goes ahead as without witnesses.
 */
final class OutageWitnesses implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(OutageWitnesses.class);
    private static final GrpcService SERVICE = GrpcService.of(CoordinatorProto.getDescriptor(), "Witness");
    static final MethodDescriptor<OutageQuestion, OutageAnswer> ATTEST =
            SERVICE.method("AttestOutage", OutageQuestion.class, OutageAnswer.class);

    enum Verdict {
        /** Every known replica is without ZooKeeper and promised no restart until {@code until}. */
        OUTAGE,
        /** Some replica reaches ZooKeeper: this host alone is cut off. */
        ISOLATED,
        /** Not proven either way (no replica known, one did not answer). */
        UNKNOWN
    }

    /**
     * @param until when OUTAGE: the earliest moment (System.nanoTime) a replica might restart
     *     anything, with the slack for clock rates and the round trip taken off
     */
    record Answer(Verdict verdict, long until, String detail) {}

    private final String hostId;
    private final Transport transport;
    private final Map<String, ManagedChannel> channels = new ConcurrentHashMap<>();
    private volatile List<String> replicas = List.of();

    OutageWitnesses(String hostId, Transport transport) {
        this.hostId = hostId;
        this.transport = transport;
    }

    /** The replicas to ask, as last read from ZooKeeper. */
    void replicas(List<String> endpoints) {
        replicas = List.copyOf(endpoints);
    }

    List<String> replicas() {
        return replicas;
    }

    /** Asks every known replica, each within {@code timeout}; blocking. */
    Answer ask(Duration timeout) {
        List<String> ask = replicas;
        if (ask.isEmpty()) {
            return new Answer(Verdict.UNKNOWN, Long.MIN_VALUE, "no coordinator replica known");
        }
        long sent = System.nanoTime();
        long until = Long.MAX_VALUE;
        List<String> heard = new ArrayList<>();
        for (String r : ask) {
            OutageAnswer a;
            try {
                a = ClientCalls.blockingUnaryCall(
                        channel(r),
                        ATTEST,
                        CallOptions.DEFAULT.withDeadlineAfter(timeout.toNanos(), TimeUnit.NANOSECONDS),
                        OutageQuestion.newBuilder().setHostId(hostId).build());
            } catch (RuntimeException e) {
                return new Answer(
                        Verdict.UNKNOWN, Long.MIN_VALUE, "replica " + r + " did not answer: " + e.getMessage());
            }
            if (a.getInContact()) {
                return new Answer(Verdict.ISOLATED, Long.MIN_VALUE, "replica " + r + " reaches ZooKeeper");
            }
            if (a.getPromiseMs() <= 0) {
                return new Answer(Verdict.UNKNOWN, Long.MIN_VALUE, "replica " + r + " promised nothing");
            }
            // The replica counts its promise from when it received the question, which is after we
            // sent it; a tenth off (at least 100 ms) covers the two clocks' rates and scheduling.
            long promise = TimeUnit.MILLISECONDS.toNanos(a.getPromiseMs());
            until = Math.min(until, sent + promise - Math.max(promise / 10, TimeUnit.MILLISECONDS.toNanos(100)));
            heard.add(r);
        }
        return new Answer(Verdict.OUTAGE, until, "replicas " + heard + " cannot reach ZooKeeper either");
    }

    private ManagedChannel channel(String endpoint) {
        return channels.computeIfAbsent(
                endpoint, e -> transport.channel(Endpoint.parse(e), PeerRequirement.anyCoordinator()));
    }

    @Override
    public void close() {
        for (ManagedChannel c : channels.values()) {
            c.shutdownNow();
        }
        channels.clear();
        log.debug("outage witnesses of {} closed", hostId);
    }
}
