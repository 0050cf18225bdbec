package dev.ferry.cluster.coordinator;

import com.google.protobuf.Message;
import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.client.CoordinatorRpc;
import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.agent.CancelMigrationRequest;
import dev.ferry.proto.agent.CancelMigrationResponse;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.SetMigrationLimitsRequest;
import dev.ferry.proto.agent.SetMigrationLimitsResponse;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.coordinator.ClusterStatus;
import dev.ferry.proto.coordinator.CreateVmRequest;
import dev.ferry.proto.coordinator.DrainProgress;
import dev.ferry.proto.coordinator.DrainRequest;
import dev.ferry.proto.coordinator.HostRef;
import dev.ferry.proto.coordinator.HostView;
import dev.ferry.proto.coordinator.ListHostsRequest;
import dev.ferry.proto.coordinator.ListHostsResponse;
import dev.ferry.proto.coordinator.ListMigrationsRequest;
import dev.ferry.proto.coordinator.ListMigrationsResponse;
import dev.ferry.proto.coordinator.ListVmsRequest;
import dev.ferry.proto.coordinator.ListVmsResponse;
import dev.ferry.proto.coordinator.MigrateRequest;
import dev.ferry.proto.coordinator.StatusRequest;
import dev.ferry.proto.coordinator.VmRef;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmSpec;
import io.grpc.Metadata;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The coordinator API (coordinator.proto) of one replica. A replica that does not lead answers
 * UNAVAILABLE, "not the leader; the leader is at X", with X in the {@code ferry-leader} trailer.
 * Mutating calls become intents named by the caller's request id; the call returns when the intent
 * ends (streaming calls relay progress meanwhile). If leadership moves while it runs, the call
 * fails UNAVAILABLE and the caller retries with the same id against the new leader, which has
 * resumed the intent.
 */
final class CoordinatorService {
    private static final Logger log = LoggerFactory.getLogger(CoordinatorService.class);

    private final Coordinator coordinator;

    CoordinatorService(Coordinator coordinator) {
        this.coordinator = coordinator;
    }

    interface Call<T> {
        T get() throws Exception;
    }

    ServerServiceDefinition definition() {
        return CoordinatorRpc.SERVICE
                .bind()
                .unary(
                        "GetStatus",
                        StatusRequest.class,
                        ClusterStatus.class,
                        (req, out) -> reply(out, coordinator::status))
                .unary(
                        "ListHosts",
                        ListHostsRequest.class,
                        ListHostsResponse.class,
                        (req, out) -> reply(
                                out,
                                () -> ListHostsResponse.newBuilder()
                                        .addAllHosts(Views.hosts(leader()))
                                        .build()))
                .unary(
                        "ListVms",
                        ListVmsRequest.class,
                        ListVmsResponse.class,
                        (req, out) -> reply(
                                out,
                                () -> ListVmsResponse.newBuilder()
                                        .addAllVms(Views.vms(leader(), req.getLive()))
                                        .build()))
                .unary(
                        "GetVm",
                        VmRef.class,
                        VmView.class,
                        (req, out) -> reply(out, () -> getVm(leader(), req.getName())))
                .unary("CreateVm", CreateVmRequest.class, VmView.class, (req, out) -> reply(out, () -> createVm(req)))
                .unary(
                        "StartVm",
                        VmRef.class,
                        VmView.class,
                        (req, out) -> reply(out, () -> onVm(IntentKind.INTENT_KIND_START, req)))
                .unary(
                        "StopVm",
                        VmRef.class,
                        VmView.class,
                        (req, out) -> reply(out, () -> onVm(IntentKind.INTENT_KIND_STOP, req)))
                .unary(
                        "DeleteVm",
                        VmRef.class,
                        VmView.class,
                        (req, out) -> reply(out, () -> onVm(IntentKind.INTENT_KIND_DELETE, req)))
                .serverStreaming("Migrate", MigrateRequest.class, MigrationEvent.class, this::migrate)
                .unary(
                        "CancelMigration",
                        VmRef.class,
                        CancelMigrationResponse.class,
                        (req, out) -> reply(out, () -> cancel(req)))
                .serverStreaming("Drain", DrainRequest.class, DrainProgress.class, this::drain)
                .unary("Activate", HostRef.class, HostView.class, (req, out) -> reply(out, () -> activate(req)))
                .unary(
                        "SetMigrationLimits",
                        SetMigrationLimitsRequest.class,
                        SetMigrationLimitsResponse.class,
                        (req, out) -> reply(out, () -> setLimits(req)))
                .unary(
                        "GetMigrationReport",
                        dev.ferry.proto.coordinator.MigrationReportRequest.class,
                        dev.ferry.proto.coordinator.MigrationReport.class,
                        (req, out) -> reply(out, () -> Views.report(leader(), req.getWhich())))
                .unary(
                        "ListMigrations",
                        ListMigrationsRequest.class,
                        ListMigrationsResponse.class,
                        (req, out) -> reply(
                                out,
                                () -> ListMigrationsResponse.newBuilder()
                                        .addAllMigrations(Views.migrations(leader(), req.getVm()))
                                        .build()))
                .bidiStreaming(
                        "Console",
                        dev.ferry.proto.agent.ConsoleRequest.class,
                        dev.ferry.proto.agent.ConsoleOutput.class,
                        out -> new ConsoleProxy(this::leader, coordinator.agents(), out))
                .build();
    }

    // ---- leader or redirect

    private Term leader() {
        Term t = coordinator.term();
        if (t != null) {
            return t;
        }
        String at = coordinator.leaderEndpoint();
        Metadata trailers = new Metadata();
        if (!at.isEmpty() && !at.equals(coordinator.endpoint().toString())) {
            trailers.put(CoordinatorRpc.LEADER, at);
        }
        throw Status.UNAVAILABLE
                .withDescription(
                        at.isEmpty() || at.equals(coordinator.endpoint().toString())
                                ? "no coordinator leads yet (an election is under way); retry"
                                : "not the leader; the leader is at " + at)
                .asRuntimeException(trailers);
    }

    private static String requestId(String given) {
        if (given == null || given.isBlank()) {
            return UUID.randomUUID().toString();
        }
        try {
            return ClusterPaths.checkIntentId(given);
        } catch (IllegalArgumentException e) {
            throw Status.INVALID_ARGUMENT.withDescription(e.getMessage()).asRuntimeException();
        }
    }

    /** The intent a retried request wrote before, if any. */
    private static Optional<Intent> earlier(Term t, String id) throws Exception {
        return t.store.intent(id).map(Versioned::value);
    }

    private static Intent await(IntentRun run) throws Exception {
        try {
            return run.outcome.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof NotLeaderException) {
                throw Status.UNAVAILABLE
                        .withDescription("the coordinator leader changed while it worked on this request; "
                                + "retry with the same request id")
                        .asRuntimeException();
            }
            throw e;
        }
    }

    private static StatusRuntimeException failed(Intent end) {
        String error = end.getError();
        Status.Code code = error.startsWith("no VM named") || error.startsWith("no host ")
                ? Status.Code.NOT_FOUND
                : Status.Code.FAILED_PRECONDITION;
        return Status.fromCode(code).withDescription(error).asRuntimeException();
    }

    // ---- VMs

    private VmView getVm(Term t, String name) throws CoordinatorException {
        Versioned<VmRecord> v = t.view.vm(name);
        if (v == null) {
            throw CoordinatorException.noVm(name);
        }
        return Views.vm(t, v.value(), Views.liveStatus(t, v.value()));
    }

    private VmView createVm(CreateVmRequest req) throws Exception {
        Term t = leader();
        String id = requestId(req.getRequestId());
        VmSpec spec = req.getSpec();
        if (earlier(t, id).isEmpty()) {
            ClusterPaths.checkName("VM name", spec.getName());
            if (spec.getMemoryBytes() <= 0) {
                throw new CoordinatorException(Status.Code.INVALID_ARGUMENT, "VM memory must be positive");
            }
            if (t.view.vm(spec.getName()) != null) {
                throw new CoordinatorException(
                        Status.Code.ALREADY_EXISTS,
                        "a VM named '" + spec.getName() + "' already exists (owned by "
                                + t.view.vm(spec.getName()).value().getOwner() + ")");
            }
            if (!req.getHost().isEmpty() && !t.moves.knownHost(req.getHost())) {
                throw CoordinatorException.noHost(req.getHost());
            }
        }
        if (spec.getSchemaVersion() == 0) {
            spec = spec.toBuilder().setSchemaVersion(Records.SCHEMA_VERSION).build();
        }
        if (spec.getCpuModel().isEmpty()) {
            // Recorded, not left to each host's QEMU: the VM keeps this model wherever it goes.
            spec = spec.toBuilder()
                    .setCpuModel(dev.ferry.cluster.policy.Compatibility.BASELINE_CPU_MODEL)
                    .build();
        }
        spec = withMacs(t, spec);
        Intent end = await(t.intents.submit(Intents.intent(IntentKind.INTENT_KIND_CREATE, id)
                .setVm(spec.getName())
                .setSpec(spec)
                .setStart(req.getStart())
                .setHost(req.getHost())
                .build()));
        if (end.getState() != IntentState.INTENT_STATE_DONE) {
            throw failed(end);
        }
        return getVm(t, spec.getName());
    }

    /**
     * The spec with its network cards' MACs fixed for the VM's life: given ones checked, missing
     * ones generated (52:54:00:xx:xx:xx). A MAC another VM of the cluster has is refused: two
     * cards with one address on one segment break both, and a card's tap is named after its MAC.
     */
    private static VmSpec withMacs(Term t, VmSpec spec) throws CoordinatorException {
        if (spec.getNicsCount() == 0) {
            return spec;
        }
        java.util.Map<String, String> taken = new java.util.HashMap<>();
        for (Versioned<VmRecord> v : t.view.vms().values()) {
            if (!v.value().getSpec().getName().equals(spec.getName())) {
                v.value()
                        .getSpec()
                        .getNicsList()
                        .forEach(n -> taken.put(n.getMac(), v.value().getSpec().getName()));
            }
        }
        try {
            VmSpec out = dev.ferry.hypervisor.net.Nics.withMacs(spec, taken.keySet(), new java.security.SecureRandom());
            for (dev.ferry.proto.vm.Nic n : spec.getNicsList()) {
                String mac = n.getMac().isEmpty() ? "" : dev.ferry.hypervisor.net.Nics.normalizeMac(n.getMac());
                if (taken.containsKey(mac)) {
                    throw new IllegalArgumentException("MAC " + mac + " is already used by VM " + taken.get(mac));
                }
            }
            return out;
        } catch (IllegalArgumentException e) {
            throw new CoordinatorException(Status.Code.INVALID_ARGUMENT, e.getMessage());
        }
    }

    private VmView onVm(IntentKind kind, VmRef req) throws Exception {
        Term t = leader();
        String id = requestId(req.getRequestId());
        if (earlier(t, id).isEmpty() && t.view.vm(req.getName()) == null) {
            throw CoordinatorException.noVm(req.getName());
        }
        Intent end = await(
                t.intents.submit(Intents.intent(kind, id).setVm(req.getName()).build()));
        if (end.getState() != IntentState.INTENT_STATE_DONE) {
            throw failed(end);
        }
        if (kind == IntentKind.INTENT_KIND_DELETE) {
            return VmView.newBuilder()
                    .setSpec(VmSpec.newBuilder().setName(req.getName()))
                    .build();
        }
        return getVm(t, req.getName());
    }

    // ---- migration

    private void migrate(MigrateRequest req, StreamObserver<MigrationEvent> responses) {
        ServerCallStreamObserver<MigrationEvent> out = (ServerCallStreamObserver<MigrationEvent>) responses;
        Object lock = new Object();
        Consumer<Message> relay = m -> {
            if (m instanceof MigrationEvent e && !e.hasSummary()) {
                synchronized (lock) {
                    if (!out.isCancelled()) {
                        out.onNext(e);
                    }
                }
            }
        };
        IntentRun run = null;
        try {
            Term t = leader();
            String id = requestId(req.getRequestId());
            if (earlier(t, id).isEmpty()) {
                if (t.view.vm(req.getVm()) == null) {
                    throw CoordinatorException.noVm(req.getVm());
                }
                if (!req.getTargetHost().isEmpty() && !t.moves.knownHost(req.getTargetHost())) {
                    throw CoordinatorException.noHost(req.getTargetHost());
                }
            }
            run = t.intents.submit(Intents.intent(IntentKind.INTENT_KIND_MIGRATE, id)
                    .setVm(req.getVm())
                    .setHost(req.getTargetHost())
                    .setMigration(req.getOptions())
                    .build());
            run.watch(relay);
            Intent end = await(run);
            MigrationSummary s = end.hasSummary()
                    ? end.getSummary()
                    : Moves.syntheticSummary(
                            end,
                            end.getState() == IntentState.INTENT_STATE_DONE
                                    ? MigrationPhase.MIGRATION_PHASE_COMPLETED
                                    : MigrationPhase.MIGRATION_PHASE_FAILED,
                            end.getError());
            if (end.getState() != IntentState.INTENT_STATE_DONE && s.getError().isEmpty()) {
                s = s.toBuilder().setError(end.getError()).build();
            }
            synchronized (lock) {
                if (!out.isCancelled()) {
                    out.onNext(MigrationEvent.newBuilder()
                            .setPhase(s.getStatus())
                            .setMigrationId(id)
                            .setSummary(s)
                            .setMessage(
                                    end.getState() == IntentState.INTENT_STATE_DONE ? end.getResult() : end.getError())
                            .build());
                    out.onCompleted();
                }
            }
        } catch (Exception | Error e) {
            fail(out, e);
        } finally {
            if (run != null) {
                run.unwatch(relay);
            }
        }
    }

    /** Relays `ferry migrate set` to the source: the VM's owner, which runs its outgoing migration. */
    private SetMigrationLimitsResponse setLimits(SetMigrationLimitsRequest req) throws Exception {
        Term t = leader();
        Versioned<VmRecord> v = t.view.vm(req.getVm());
        if (v == null) {
            throw CoordinatorException.noVm(req.getVm());
        }
        HostRecord source = t.hostRecord(v.value().getOwner());
        if (source == null) {
            throw new CoordinatorException(
                    Status.Code.FAILED_PRECONDITION, v.value().getOwner() + " is not alive");
        }
        return t.orders.setMigrationLimits(source, req);
    }

    private CancelMigrationResponse cancel(VmRef req) throws Exception {
        Term t = leader();
        Versioned<VmRecord> v = t.view.vm(req.getName());
        if (v == null) {
            throw CoordinatorException.noVm(req.getName());
        }
        HostRecord source = t.hostRecord(v.value().getOwner());
        if (source == null) {
            throw new CoordinatorException(
                    Status.Code.FAILED_PRECONDITION, v.value().getOwner() + " is not alive");
        }
        return t.orders.cancelMigration(
                source, CancelMigrationRequest.newBuilder().setVm(req.getName()).build());
    }

    // ---- drain

    private void drain(DrainRequest req, StreamObserver<DrainProgress> responses) {
        ServerCallStreamObserver<DrainProgress> out = (ServerCallStreamObserver<DrainProgress>) responses;
        Object lock = new Object();
        Consumer<Message> relay = m -> {
            if (m instanceof DrainProgress p) {
                synchronized (lock) {
                    if (!out.isCancelled()) {
                        out.onNext(p);
                    }
                }
            }
        };
        IntentRun run = null;
        try {
            Term t = leader();
            String id = requestId(req.getRequestId());
            if (earlier(t, id).isEmpty() && !t.moves.knownHost(req.getHost())) {
                throw CoordinatorException.noHost(req.getHost());
            }
            run = t.intents.submit(Intents.intent(IntentKind.INTENT_KIND_DRAIN, id)
                    .setHost(req.getHost())
                    .setParallel(Math.max(1, req.getParallel()))
                    .setMigration(req.getOptions())
                    .build());
            run.watch(relay);
            Intent end = await(run);
            synchronized (lock) {
                if (!out.isCancelled()) {
                    out.onNext(DrainProgress.newBuilder()
                            .setIntentId(end.getId())
                            .setHost(end.getHost())
                            .setState(end.getState())
                            .addAllMoves(end.getMovesList())
                            .setMessage(
                                    end.getState() == IntentState.INTENT_STATE_DONE ? end.getResult() : end.getError())
                            .build());
                    out.onCompleted();
                }
            }
        } catch (Exception | Error e) {
            fail(out, e);
        } finally {
            if (run != null) {
                run.unwatch(relay);
            }
        }
    }

    private HostView activate(HostRef req) throws Exception {
        Term t = leader();
        String id = requestId(req.getRequestId());
        Intent end = await(t.intents.submit(Intents.intent(IntentKind.INTENT_KIND_ACTIVATE, id)
                .setHost(req.getHost())
                .build()));
        if (end.getState() != IntentState.INTENT_STATE_DONE) {
            throw failed(end);
        }
        return Views.hosts(t).stream()
                .filter(h -> h.getId().equals(req.getHost()))
                .findFirst()
                .orElse(HostView.newBuilder().setId(req.getHost()).build());
    }

    // ---- plumbing

    private static <T> void reply(StreamObserver<T> out, Call<T> call) {
        try {
            out.onNext(call.get());
            out.onCompleted();
        } catch (Exception | Error e) {
            fail(out, e);
        }
    }

    private static void fail(StreamObserver<?> out, Throwable e) {
        StatusRuntimeException s;
        if (e instanceof StatusRuntimeException sre) {
            s = sre;
        } else if (e instanceof CoordinatorException ce) {
            s = Status.fromCode(ce.code()).withDescription(ce.getMessage()).asRuntimeException();
        } else if (e instanceof AgentCallException ae) {
            s = Status.fromCode(ae.code()).withDescription(ae.getMessage()).asRuntimeException();
        } else if (e instanceof NotLeaderException) {
            s = Status.UNAVAILABLE
                    .withDescription("the coordinator leader changed; retry with the same request id")
                    .asRuntimeException();
        } else if (e instanceof IllegalArgumentException iae) {
            s = Status.INVALID_ARGUMENT.withDescription(iae.getMessage()).asRuntimeException();
        } else {
            log.error("coordinator request failed", e);
            s = Status.INTERNAL.withDescription(e.toString()).asRuntimeException();
        }
        try {
            out.onError(s);
        } catch (RuntimeException gone) {
            // the caller left
        }
    }
}
