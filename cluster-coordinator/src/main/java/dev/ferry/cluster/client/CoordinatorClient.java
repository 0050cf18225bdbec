package dev.ferry.cluster.client;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.proto.agent.CancelMigrationResponse;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.SetMigrationLimitsRequest;
import dev.ferry.proto.agent.SetMigrationLimitsResponse;
import dev.ferry.proto.coordinator.ClusterStatus;
import dev.ferry.proto.coordinator.CreateVmRequest;
import dev.ferry.proto.coordinator.DrainProgress;
import dev.ferry.proto.coordinator.DrainRequest;
import dev.ferry.proto.coordinator.HostRef;
import dev.ferry.proto.coordinator.HostView;
import dev.ferry.proto.coordinator.ListHostsRequest;
import dev.ferry.proto.coordinator.ListMigrationsRequest;
import dev.ferry.proto.coordinator.ListVmsRequest;
import dev.ferry.proto.coordinator.MigrateRequest;
import dev.ferry.proto.coordinator.MigrationView;
import dev.ferry.proto.coordinator.StatusRequest;
import dev.ferry.proto.coordinator.VmRef;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.PeerRequirement;
import dev.ferry.rpc.Transport;
import io.grpc.CallOptions;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ClientCalls;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import java.util.function.Predicate;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.Participant;

/**
 * A client of the cluster coordinator. It asks the leader; a replica that does not lead names the
 * leader and the client goes there; when no replica answers (a leader change) it looks the
 * replicas up again and retries for up to {@code retryFor}, with the same request id, so that a
 * request runs once however often it is sent. Errors are {@link CoordinatorCallException} with one
 * line.
 */
public final class CoordinatorClient implements AutoCloseable {
    /** Where the coordinator replicas are, the leader first when known. */
    public interface Locator extends AutoCloseable {
        List<String> endpoints() throws Exception;

        @Override
        default void close() {}
    }

    /** Replicas found through the leader election in ZooKeeper. */
    public static Locator zookeeper(ZkClients zk) {
        return new Locator() {
            private CuratorFramework client;

            @Override
            public synchronized List<String> endpoints() throws Exception {
                if (client == null) {
                    client = zk.singleAttempt();
                    client.start();
                }
                // Asked again on every retry: a retry that skipped this read the leader without a
                // session and reported ZooKeeper's bare ConnectionLoss instead of why.
                if (!client.getZookeeperClient().isConnected()
                        && !client.blockUntilConnected(
                                (int) zk.connectionTimeout().toMillis() * 2, TimeUnit.MILLISECONDS)) {
                    throw new IllegalStateException(
                            "cannot reach ZooKeeper at " + zk.connect() + ": " + zk.whyNoSession());
                }
                LeaderLatch reader = new LeaderLatch(client, ClusterPaths.LEADER);
                List<String> out = new ArrayList<>();
                for (Participant p : reader.getParticipants()) {
                    if (p.isLeader()) {
                        out.addFirst(p.getId());
                    } else {
                        out.add(p.getId());
                    }
                }
                return out;
            }

            @Override
            public synchronized void close() {
                if (client != null) {
                    client.close();
                }
            }
        };
    }

    /** A fixed list of replicas. */
    public static Locator fixed(List<String> endpoints) {
        List<String> copy = List.copyOf(endpoints);
        return () -> copy;
    }

    /** A locator that tries {@code first}, then the others. */
    public static Locator firstThen(Locator first, Locator then) {
        return new Locator() {
            @Override
            public List<String> endpoints() throws Exception {
                List<String> out = new ArrayList<>();
                try {
                    out.addAll(first.endpoints());
                } catch (Exception e) {
                    // try the other
                }
                try {
                    for (String e : then.endpoints()) {
                        if (!out.contains(e)) {
                            out.add(e);
                        }
                    }
                } catch (Exception e) {
                    if (out.isEmpty()) {
                        throw e;
                    }
                }
                return out;
            }

            @Override
            public void close() {
                first.close();
                then.close();
            }
        };
    }

    private final Transport transport;
    private final Locator locator;
    private final Duration callDeadline;
    private final Duration retryFor;
    private final Map<String, ManagedChannel> channels = new ConcurrentHashMap<>();
    private volatile String current;

    /**
     * @param callDeadline longest wait for one unary answer
     * @param retryFor how long to keep retrying while no replica leads or answers
     */
    public CoordinatorClient(Transport transport, Locator locator, Duration callDeadline, Duration retryFor) {
        this.transport = transport;
        this.locator = locator;
        this.callDeadline = callDeadline;
        this.retryFor = retryFor;
    }

    // ---- the API

    public ClusterStatus status() {
        return unary(CoordinatorRpc.GET_STATUS, StatusRequest.getDefaultInstance());
    }

    /**
     * The status as {@code endpoint} (one replica, leader or not) answers it: one call, no
     * redirect and no retry, so that `cluster status` learns each replica's own certificate.
     */
    public ClusterStatus statusOf(String endpoint) {
        try {
            return ClientCalls.blockingUnaryCall(
                    channel(endpoint),
                    CoordinatorRpc.GET_STATUS,
                    CallOptions.DEFAULT.withDeadlineAfter(callDeadline.toMillis(), TimeUnit.MILLISECONDS),
                    StatusRequest.getDefaultInstance());
        } catch (StatusRuntimeException e) {
            throw translate(e);
        }
    }

    /** The transport this client calls with (the caller's own certificate, if any). */
    public Transport transport() {
        return transport;
    }

    public List<HostView> hosts() {
        return unary(CoordinatorRpc.LIST_HOSTS, ListHostsRequest.getDefaultInstance())
                .getHostsList();
    }

    public List<VmView> vms(boolean live) {
        return unary(
                        CoordinatorRpc.LIST_VMS,
                        ListVmsRequest.newBuilder().setLive(live).build())
                .getVmsList();
    }

    /** Running and retained migrations, of {@code vm} or (empty) of every VM; running first, newest first. */
    public List<MigrationView> migrations(String vm) {
        return unary(
                        CoordinatorRpc.LIST_MIGRATIONS,
                        ListMigrationsRequest.newBuilder().setVm(vm).build())
                .getMigrationsList();
    }

    /** A migration's record by its id or its VM's name (`ferry report`). */
    public dev.ferry.proto.coordinator.MigrationReport report(String which) {
        return unary(
                CoordinatorRpc.GET_MIGRATION_REPORT,
                dev.ferry.proto.coordinator.MigrationReportRequest.newBuilder()
                        .setWhich(which)
                        .build());
    }

    /** Changes a running migration's limits (`ferry migrate set`). */
    public SetMigrationLimitsResponse setMigrationLimits(SetMigrationLimitsRequest req) {
        return unary(CoordinatorRpc.SET_MIGRATION_LIMITS, req);
    }

    public VmView vm(String name) {
        return unary(CoordinatorRpc.GET_VM, VmRef.newBuilder().setName(name).build());
    }

    public VmView createVm(CreateVmRequest req) {
        return unary(CoordinatorRpc.CREATE_VM, req);
    }

    public VmView startVm(String name, String requestId) {
        return unary(
                CoordinatorRpc.START_VM,
                VmRef.newBuilder().setName(name).setRequestId(requestId).build());
    }

    public VmView stopVm(String name, String requestId) {
        return unary(
                CoordinatorRpc.STOP_VM,
                VmRef.newBuilder().setName(name).setRequestId(requestId).build());
    }

    public VmView deleteVm(String name, String requestId) {
        return unary(
                CoordinatorRpc.DELETE_VM,
                VmRef.newBuilder().setName(name).setRequestId(requestId).build());
    }

    public CancelMigrationResponse cancelMigration(String vm) {
        return unary(
                CoordinatorRpc.CANCEL_MIGRATION, VmRef.newBuilder().setName(vm).build());
    }

    public HostView activate(String host, String requestId) {
        return unary(
                CoordinatorRpc.ACTIVATE,
                HostRef.newBuilder().setHost(host).setRequestId(requestId).build());
    }

    /** Migrates through the cluster, relaying progress; returns the terminal event (with the summary). */
    public MigrationEvent migrate(MigrateRequest req, Consumer<MigrationEvent> events) {
        return streaming(CoordinatorRpc.MIGRATE, req, events, MigrationEvent::hasSummary);
    }

    /**
     * Drains a host, relaying progress. With {@code wait}, returns the final progress once the
     * drain ends; without, returns the first progress (the drain goes on in the cluster).
     */
    public DrainProgress drain(DrainRequest req, Consumer<DrainProgress> events, boolean wait) {
        return streaming(
                CoordinatorRpc.DRAIN,
                req,
                events,
                p -> !wait
                        || p.getState() == dev.ferry.proto.cluster.IntentState.INTENT_STATE_DONE
                        || p.getState() == dev.ferry.proto.cluster.IntentState.INTENT_STATE_FAILED);
    }

    /**
     * Opens one console stream on the leader (as far as this client knows it): the returned
     * observer takes the open request, then input. {@link ConsoleFollower} opens one per owner
     * and calls {@link #redirect} when a stream fails with UNAVAILABLE.
     */
    public io.grpc.stub.StreamObserver<dev.ferry.proto.agent.ConsoleRequest> console(
            io.grpc.stub.StreamObserver<dev.ferry.proto.agent.ConsoleOutput> out) {
        String target = target(System.nanoTime() + retryFor.toNanos());
        return ClientCalls.asyncBidiStreamingCall(
                channel(target).newCall(CoordinatorRpc.CONSOLE, CallOptions.DEFAULT), out);
    }

    /** After an UNAVAILABLE answer: the next call goes to the leader it named, or to one looked up again. */
    public void redirect(StatusRuntimeException e) {
        Metadata trailers = Status.trailersFromThrowable(e);
        String leader = trailers == null ? null : trailers.get(CoordinatorRpc.LEADER);
        current = leader != null && !leader.isBlank() ? leader : null;
    }

    /** The one-line message for a failed call, as every other call reports it. */
    public CoordinatorCallException explain(StatusRuntimeException e) {
        return translate(e);
    }

    // ---- calls, leader-following and retries

    private ManagedChannel channel(String endpoint) {
        return channels.computeIfAbsent(
                endpoint, e -> transport.channel(Endpoint.parse(e), PeerRequirement.anyCoordinator()));
    }

    /** The replica to ask: the last one that answered, or one looked up, retrying until {@code deadline}. */
    private String target(long deadline) {
        String c = current;
        if (c != null) {
            return c;
        }
        while (true) {
            try {
                return locate(null);
            } catch (CoordinatorCallException e) {
                // No replica registered yet (starting, or between leaders): look again until the deadline.
                if (System.nanoTime() > deadline) {
                    throw e;
                }
                pause(e);
            }
        }
    }

    private static void pause(RuntimeException cause) {
        try {
            Thread.sleep(200);
        } catch (InterruptedException ie) {
            Thread.currentThread().interrupt();
            throw cause;
        }
    }

    private String locate(StatusRuntimeException last) {
        List<String> endpoints;
        try {
            endpoints = locator.endpoints();
        } catch (Exception e) {
            throw new CoordinatorCallException(
                    Status.Code.UNAVAILABLE, "cannot find the coordinator: " + e.getMessage(), e);
        }
        if (endpoints.isEmpty()) {
            throw new CoordinatorCallException(
                    Status.Code.UNAVAILABLE, "no coordinator is running for this cluster", last);
        }
        current = endpoints.getFirst();
        return current;
    }

    private <Q, R> R unary(MethodDescriptor<Q, R> method, Q request) {
        long deadline = System.nanoTime() + retryFor.toNanos();
        String target = target(deadline);
        while (true) {
            try {
                return ClientCalls.blockingUnaryCall(
                        channel(target),
                        method,
                        CallOptions.DEFAULT.withDeadlineAfter(callDeadline.toMillis(), TimeUnit.MILLISECONDS),
                        request);
            } catch (StatusRuntimeException e) {
                target = nextTarget(e, deadline);
            }
        }
    }

    /** Where to retry after {@code e}, or throws when it should not be retried. */
    private String nextTarget(StatusRuntimeException e, long deadline) {
        if (e.getStatus().getCode() != Status.Code.UNAVAILABLE) {
            throw translate(e);
        }
        Metadata trailers = Status.trailersFromThrowable(e);
        String leader = trailers == null ? null : trailers.get(CoordinatorRpc.LEADER);
        if (leader != null && !leader.isBlank() && !leader.equals(current)) {
            current = leader;
            return leader;
        }
        if (System.nanoTime() > deadline) {
            throw translate(e);
        }
        pause(translate(e));
        current = null;
        return target(deadline);
    }

    private <Q, R> R streaming(MethodDescriptor<Q, R> method, Q request, Consumer<R> events, Predicate<R> terminal) {
        long deadline = System.nanoTime() + retryFor.toNanos();
        String target = target(deadline);
        while (true) {
            io.grpc.ClientCall<Q, R> call = channel(target).newCall(method, CallOptions.DEFAULT);
            try {
                Iterator<R> it = ClientCalls.blockingServerStreamingCall(call, request);
                R last = null;
                while (it.hasNext()) {
                    last = it.next();
                    if (terminal.test(last)) {
                        call.cancel("done", null);
                        return last;
                    }
                    events.accept(last);
                }
                if (last != null) {
                    return last;
                }
                throw new CoordinatorCallException(
                        Status.Code.INTERNAL, "the coordinator ended the call without a result", null);
            } catch (StatusRuntimeException e) {
                target = nextTarget(e, deadline);
                deadline = System.nanoTime() + retryFor.toNanos();
            }
        }
    }

    private CoordinatorCallException translate(StatusRuntimeException e) {
        Status s = e.getStatus();
        String what = switch (s.getCode()) {
            case UNAVAILABLE ->
                dev.ferry.rpc.TlsFailure.explain(e, "the coordinator" + (current == null ? "" : " at " + current))
                        .orElse(
                                s.getDescription() != null
                                                && !s.getDescription().contains("io exception")
                                        ? s.getDescription()
                                        : "no coordinator answers" + (current == null ? "" : " at " + current)
                                                + (s.getDescription() == null ? "" : " (" + s.getDescription() + ")"));
            case DEADLINE_EXCEEDED -> "the coordinator did not answer within " + callDeadline.toSeconds() + " s";
            default ->
                s.getDescription() != null ? s.getDescription() : s.getCode().toString();
        };
        return new CoordinatorCallException(s.getCode(), what, e);
    }

    @Override
    public void close() {
        for (ManagedChannel c : channels.values()) {
            c.shutdownNow();
        }
        channels.clear();
        locator.close();
    }
}
