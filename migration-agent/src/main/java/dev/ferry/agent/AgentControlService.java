package dev.ferry.agent;

import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.migration.receive.IncomingMigration;
import dev.ferry.migration.receive.MigrationStreamService;
import dev.ferry.pki.Role;
import dev.ferry.proto.agent.AgentInfo;
import dev.ferry.proto.agent.AgentInfoRequest;
import dev.ferry.proto.agent.CancelMigrationRequest;
import dev.ferry.proto.agent.CancelMigrationResponse;
import dev.ferry.proto.agent.ConsoleOutput;
import dev.ferry.proto.agent.ConsoleRequest;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.LeaderTermRequest;
import dev.ferry.proto.agent.LeaderTermResponse;
import dev.ferry.proto.agent.ListVmsRequest;
import dev.ferry.proto.agent.ListVmsResponse;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.agent.PrepareIncomingResponse;
import dev.ferry.proto.agent.SetMigrationLimitsRequest;
import dev.ferry.proto.agent.SetMigrationLimitsResponse;
import dev.ferry.proto.agent.VmRequest;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import dev.ferry.rpc.Callers;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The control API: maps each rpc to the registry or a migration, and errors to gRPC statuses.
 * Every order that changes this host's VMs passes {@link LeaderTerms} first: in a cluster it must
 * carry the coordinator leader's term, no older than the newest seen. The migration peers' own
 * calls (prepare, discard of an incoming migration) and reads carry none.
 */
final class AgentControlService {
    private static final Logger log = LoggerFactory.getLogger(AgentControlService.class);

    private final VmRegistry registry;
    private final IncomingMigrations incoming;
    private final OutgoingMigrations outgoing;
    private final MigrationStreamService streams;
    private final Supplier<AgentInfo> info;
    private final LeaderTerms terms;
    private final ConsoleService consoles;
    private final RequestLog<VmStatus> requests = new RequestLog<>(4096);

    AgentControlService(
            VmRegistry registry,
            IncomingMigrations incoming,
            OutgoingMigrations outgoing,
            MigrationStreamService streams,
            Supplier<AgentInfo> info,
            LeaderTerms terms,
            ConsoleService consoles) {
        this.registry = registry;
        this.consoles = consoles;
        this.incoming = incoming;
        this.outgoing = outgoing;
        this.streams = streams;
        this.info = info;
        this.terms = terms;
    }

    ServerServiceDefinition definition() {
        return AgentControlRpc.SERVICE
                .bind()
                .unary("GetAgentInfo", AgentInfoRequest.class, AgentInfo.class, (req, out) -> reply(out, info::get))
                .unary(
                        "CreateVm",
                        CreateVmRequest.class,
                        VmStatus.class,
                        (req, out) -> reply(
                                out,
                                () -> terms.order(
                                        req.getLeaderTerm(),
                                        "CreateVm " + req.getSpec().getName(),
                                        () -> requests.once(
                                                req.getRequestId(),
                                                () -> registry.status(registry.create(
                                                        req.getSpec(), req.getStart(), req.getEpoch()))))))
                .unary(
                        "StartVm",
                        VmRequest.class,
                        VmStatus.class,
                        (req, out) -> reply(out, () -> order(req, "StartVm", () -> registry.start(req.getName()))))
                .unary(
                        "StopVm",
                        VmRequest.class,
                        VmStatus.class,
                        (req, out) -> reply(out, () -> order(req, "StopVm", () -> registry.stop(req.getName()))))
                .unary(
                        "DeleteVm",
                        VmRequest.class,
                        VmStatus.class,
                        (req, out) -> reply(out, () -> order(req, "DeleteVm", () -> registry.delete(req.getName()))))
                .unary("GetVm", VmRequest.class, VmStatus.class, (req, out) -> reply(out, () -> getVm(req.getName())))
                .unary("ListVms", ListVmsRequest.class, ListVmsResponse.class, (req, out) -> reply(out, this::listVms))
                .unary(
                        "PrepareIncoming",
                        PrepareIncomingRequest.class,
                        PrepareIncomingResponse.class,
                        (req, out) -> reply(out, () -> {
                            // Only the source agent prepares its target (a lane from any other host
                            // would be refused anyway; refusing here keeps disks and memory unclaimed).
                            Optional<String> stranger = Callers.unlessAgent(
                                    Callers.current(),
                                    req.getSourceHost(),
                                    "a prepare naming source " + req.getSourceHost());
                            if (stranger.isPresent()) {
                                throw new AgentException(Status.Code.PERMISSION_DENIED, stranger.get());
                            }
                            return incoming.prepare(req);
                        }))
                .serverStreaming("Migrate", MigrateRequest.class, MigrationEvent.class, this::migrate)
                .unary(
                        "CancelMigration",
                        CancelMigrationRequest.class,
                        CancelMigrationResponse.class,
                        (req, out) -> reply(out, () -> {
                            if (!req.getMigrationId().isEmpty()) {
                                return cancelIncoming(req); // from the source agent, not an order
                            }
                            if (Callers.currentIs(Role.AGENT)) {
                                throw new AgentException(
                                        Status.Code.PERMISSION_DENIED,
                                        "an agent may cancel only an incoming migration it is the source of");
                            }
                            return terms.order(
                                    req.getLeaderTerm(),
                                    "CancelMigration " + req.getVm(),
                                    () -> outgoing.cancel(req.getVm()));
                        }))
                .unary(
                        "SetMigrationLimits",
                        SetMigrationLimitsRequest.class,
                        SetMigrationLimitsResponse.class,
                        (req, out) -> reply(
                                out,
                                () -> terms.order(req.getLeaderTerm(), "SetMigrationLimits " + req.getVm(), () -> {
                                    PreCopySender.Limits l = outgoing.setLimits(
                                            req.getVm(),
                                            req.getDowntimeMs() == 0
                                                    ? null
                                                    : java.time.Duration.ofMillis(req.getDowntimeMs()),
                                            req.hasMaxBandwidthBytesPerSec() ? req.getMaxBandwidthBytesPerSec() : null);
                                    return SetMigrationLimitsResponse.newBuilder()
                                            .setDowntimeMs((int) l.downtime().toMillis())
                                            .setMaxBandwidthBytesPerSec(l.maxBandwidth())
                                            .setMessage("the migration of " + req.getVm() + " now runs with "
                                                    + l.downtime().toMillis() + " ms downtime, "
                                                    + (l.maxBandwidth() == 0
                                                            ? "no bandwidth cap"
                                                            : l.maxBandwidth() + " B/s"))
                                            .build();
                                })))
                .unary(
                        "GetMigrationRecords",
                        dev.ferry.proto.agent.MigrationRecordsRequest.class,
                        dev.ferry.proto.agent.MigrationRecordsResponse.class,
                        (req, out) -> reply(
                                out,
                                () -> dev.ferry.proto.agent.MigrationRecordsResponse.newBuilder()
                                        .addAllRecords(outgoing.records(req.getMigrationId(), req.getVm()))
                                        .build()))
                .unary(
                        "AnnounceLeaderTerm",
                        LeaderTermRequest.class,
                        LeaderTermResponse.class,
                        (req, out) -> reply(
                                out,
                                () -> terms.order(
                                        req.getLeaderTerm(),
                                        "the announcement of leader term " + req.getLeaderTerm() + " by "
                                                + req.getLeader(),
                                        () -> LeaderTermResponse.newBuilder()
                                                .setNewestLeaderTerm(terms.newest())
                                                .build())))
                .bidiStreaming("Console", ConsoleRequest.class, ConsoleOutput.class, consoles::open)
                .build();
    }

    interface VmOrder {
        ManagedVm run() throws AgentException;
    }

    /** A VM order: admitted by its leader term, run once per request id. */
    private VmStatus order(VmRequest req, String op, VmOrder order) throws AgentException {
        return terms.order(
                req.getLeaderTerm(),
                op + " " + req.getName(),
                () -> requests.once(req.getRequestId(), () -> registry.status(order.run())));
    }

    private CancelMigrationResponse cancelIncoming(CancelMigrationRequest req) throws AgentException {
        IncomingMigration m = streams.find(req.getMigrationId());
        if (m == null) {
            throw new AgentException(
                    Status.Code.NOT_FOUND,
                    "no incoming migration " + req.getMigrationId() + " on " + registry.hostId());
        }
        if (Callers.currentIs(Role.AGENT)) {
            Optional<String> stranger =
                    Callers.unlessAgent(Callers.current(), m.sourceHost(), "migration " + m.migrationId());
            if (stranger.isPresent()) {
                throw new AgentException(Status.Code.PERMISSION_DENIED, stranger.get());
            }
        }
        if (m.state() == IncomingMigration.State.READY) {
            throw new AgentException(
                    Status.Code.FAILED_PRECONDITION,
                    "incoming migration " + req.getMigrationId() + " is at its commit point; its outcome decides");
        }
        m.discard("abandoned by the source: " + req.getReason(), null);
        boolean discarded = m.state() == IncomingMigration.State.DISCARDED;
        return CancelMigrationResponse.newBuilder()
                .setCancelled(discarded)
                .setMessage(discarded ? "discarded" : "already " + m.state())
                .build();
    }

    private VmStatus getVm(String name) throws AgentException {
        try {
            return registry.status(registry.get(name));
        } catch (AgentException notHere) {
            IncomingMigration m = arriving(name);
            if (m == null) {
                throw notHere;
            }
            return VmStatus.newBuilder()
                    .setSpec(m.spec())
                    .setState(VmState.VM_STATE_INCOMING)
                    .setHost(registry.hostId())
                    .setDriver(registry.driver().name())
                    .setReason("arriving from " + m.sourceHost() + " (" + m.state() + ")")
                    .build();
        }
    }

    private IncomingMigration arriving(String name) {
        for (IncomingMigration m : streams.all()) {
            if (m.spec().getName().equals(name)) {
                return m;
            }
        }
        return null;
    }

    private ListVmsResponse listVms() {
        List<VmStatus> all = new ArrayList<>(registry.list());
        for (IncomingMigration m : streams.all()) {
            all.add(VmStatus.newBuilder()
                    .setSpec(m.spec())
                    .setState(VmState.VM_STATE_INCOMING)
                    .setHost(registry.hostId())
                    .setDriver(registry.driver().name())
                    .setReason("arriving from " + m.sourceHost())
                    .build());
        }
        return ListVmsResponse.newBuilder().addAllVms(all).build();
    }

    private void migrate(MigrateRequest req, StreamObserver<MigrationEvent> responses) {
        ServerCallStreamObserver<MigrationEvent> out = (ServerCallStreamObserver<MigrationEvent>) responses;
        OutgoingMigrations.Claimed claimed;
        try {
            // The term admits the migration's start; once claimed it runs to its end (its commit is
            // version-checked in the cluster store, whoever leads by then).
            claimed = terms.order(req.getLeaderTerm(), "Migrate " + req.getVm(), () -> outgoing.claim(req));
        } catch (AgentException e) {
            out.onError(e.toStatus());
            return;
        }
        // The migration outlives the caller: if the CLI goes away, the migration still finishes.
        Thread.ofPlatform().name("ferry-migrate-" + req.getVm()).start(() -> {
            Object lock = new Object();
            try {
                runMigration(claimed, req, out, lock);
            } catch (RuntimeException | Error e) {
                // Claimed.run answers every end itself; this is the last line, so the call never hangs.
                log.error("migration of {} ended abnormally", req.getVm(), e);
                synchronized (lock) {
                    if (!out.isCancelled()) {
                        try {
                            out.onError(Status.INTERNAL
                                    .withDescription("the migration ended abnormally: " + e)
                                    .asRuntimeException());
                        } catch (RuntimeException gone) {
                            // caller gone
                        }
                    }
                }
            }
        });
    }

    private static void runMigration(
            OutgoingMigrations.Claimed claimed,
            MigrateRequest req,
            ServerCallStreamObserver<MigrationEvent> out,
            Object lock) {
        claimed.run(event -> {
            synchronized (lock) {
                if (!out.isCancelled()) {
                    try {
                        out.onNext(event);
                    } catch (RuntimeException e) {
                        log.debug("progress for {} not delivered: {}", req.getVm(), e.toString());
                    }
                }
            }
        });
        synchronized (lock) {
            if (!out.isCancelled()) {
                try {
                    out.onCompleted();
                } catch (RuntimeException e) {
                    // caller gone
                }
            }
        }
    }

    interface Call<T> {
        T get() throws AgentException;
    }

    private static <T> void reply(StreamObserver<T> out, Call<T> call) {
        try {
            out.onNext(call.get());
            out.onCompleted();
        } catch (AgentException e) {
            out.onError(e.toStatus());
        } catch (RuntimeException e) {
            log.error("control request failed", e);
            out.onError(Status.INTERNAL.withDescription(e.toString()).asRuntimeException());
        }
    }
}
