package dev.ferry.cluster.coordinator;

import static dev.ferry.cluster.coordinator.IntentStep.act;
import static dev.ferry.cluster.coordinator.IntentStep.advance;
import static dev.ferry.cluster.coordinator.IntentStep.done;
import static dev.ferry.cluster.coordinator.IntentStep.failed;
import static dev.ferry.cluster.coordinator.IntentStep.refuse;
import static dev.ferry.cluster.coordinator.IntentStep.set;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.coordinator.IntentStep.Fresh;
import dev.ferry.cluster.coordinator.IntentStep.Step;
import dev.ferry.cluster.policy.Compatibility;
import dev.ferry.cluster.policy.Placement;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.VmRequest;
import dev.ferry.proto.cluster.DesiredState;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmPhase;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import io.grpc.Status;
import java.time.Duration;
import java.util.Optional;
import java.util.Set;
import java.util.function.BiConsumer;

/**
 * Create, start, stop and delete, each an intent carried out by the {@link IntentStep} recipe. The
 * record changes first (desired state, owner, phase, in the same transaction as the intent), then
 * the agent acts, then the record and the intent say how it ended. Each decision looks at the
 * fresh record: the intent id in it says which steps already happened, so a new leader resuming
 * one of them carries on where the old one was.
 */
final class VmOperations {
    /** How long a delete waits for the VM's run lock to go (its host releases it in the background). */
    private static final Duration LOCK_RELEASE = Duration.ofSeconds(10);

    private final IntentStep steps;
    private final ClusterView view;
    private final Capacity capacity;
    private final AgentActions orders;
    private final WriteGuard guard;
    private final RestartGate gate;
    private final Clocks clocks;
    private final ClusterStore store;

    VmOperations(
            IntentStep steps,
            ClusterView view,
            Capacity capacity,
            AgentActions orders,
            WriteGuard guard,
            RestartGate gate,
            Clocks clocks) {
        this.steps = steps;
        this.view = view;
        this.capacity = capacity;
        this.orders = orders;
        this.guard = guard;
        this.gate = gate;
        this.clocks = clocks;
        this.store = guard.store();
    }

    static VmRecord.Builder record(VmSpec spec) {
        return VmRecord.newBuilder().setSchemaVersion(Records.SCHEMA_VERSION).setSpec(spec);
    }

    private static boolean mine(VmRecord r, Intent i) {
        return r.getIntentId().equals(i.getId());
    }

    // ---- create

    Intent create(IntentRun run, Versioned<Intent> cur) throws Exception {
        VmSpec spec = cur.value().getSpec();
        return steps.claimed(cur, spec.getName(), (fresh, i) -> decideCreate(fresh, i, spec));
    }

    private Step decideCreate(Fresh fresh, Intent i, VmSpec spec) {
        String name = spec.getName();
        if (!fresh.exists()) {
            String target;
            if (!i.getHost().isEmpty()) {
                String why = hostProblem(i.getHost());
                if (why == null) {
                    why = capacity.fitOn(spec, i.getHost());
                }
                if (why != null) {
                    return refuse(i, "cannot create " + name + " on " + i.getHost() + ": " + why);
                }
                target = i.getHost();
            } else {
                Placement.Decision d = capacity.placeAndReserve(spec, Set.of());
                if (d instanceof Placement.NoHost n) {
                    return refuse(i, n.reason());
                }
                target = ((Placement.Placed) d).host();
            }
            VmRecord r = record(pinned(spec, target))
                    .setDesired(i.getStart() ? DesiredState.DESIRED_STATE_RUNNING : DesiredState.DESIRED_STATE_STOPPED)
                    .setOwner(target)
                    .setEpoch(1)
                    .setPhase(i.getStart() ? VmPhase.VM_PHASE_STARTING : VmPhase.VM_PHASE_STOPPED)
                    .setIntentId(i.getId())
                    .build();
            return advance(
                            IntentStep.create(name, r),
                            i.toBuilder()
                                    .setState(IntentState.INTENT_STATE_RUNNING)
                                    .setHost(target)
                                    .build())
                    .releasing(() -> capacity.settle(name));
        }
        VmRecord r = fresh.record();
        if (!mine(r, i)) {
            return refuse(i, "a VM named '" + name + "' already exists (owned by " + r.getOwner() + ")");
        }
        HostRecord host = view.hostRecord(r.getOwner());
        if (host == null) {
            return failed(
                    i,
                    IntentStep.delete(fresh.versioned()),
                    r.getOwner() + " left the cluster before " + name + " was created");
        }
        return act(() -> {
            try {
                defineOrStart(host, r.getSpec(), r.getEpoch(), i.getStart(), i.getId());
            } catch (AgentCallException e) {
                bestEffortDelete(host, name, i.getId() + ".undo");
                return failed(
                        i,
                        IntentStep.delete(fresh.versioned()),
                        "cannot create " + name + " on " + r.getOwner() + ": " + e.getMessage());
            }
            return done(
                    i,
                    set(
                            fresh.versioned(),
                            r.toBuilder()
                                    .setIntentId("")
                                    .setPhase(i.getStart() ? VmPhase.VM_PHASE_RUNNING : VmPhase.VM_PHASE_STOPPED)
                                    .build()),
                    "created " + name + " on " + r.getOwner() + (i.getStart() ? " (running)" : ""));
        });
    }

    /**
     * {@code spec} with its machine type pinned to the versioned type the first host's QEMU
     * resolves it to ("pc" to "pc-i440fx-7.2"), so that every later host runs the same virtual
     * hardware (Compatibility#pinMachine says why).
     */
    private VmSpec pinned(VmSpec spec, String host) {
        HostRecord h = view.hostRecord(host);
        if (h == null) {
            return spec;
        }
        return spec.toBuilder()
                .setMachine(Compatibility.pinMachine(spec.getMachine(), h.getMachineAliasesMap()))
                .build();
    }

    /** Asks {@code host} to define (and start) the VM at {@code epoch}; a retry finds it done. */
    private void defineOrStart(HostRecord host, VmSpec spec, long epoch, boolean start, String requestId) {
        try {
            orders.createVm(
                    host,
                    CreateVmRequest.newBuilder()
                            .setSpec(spec)
                            .setStart(start)
                            .setEpoch(epoch)
                            .setRequestId(requestId + "." + epoch)
                            .build());
        } catch (AgentCallException e) {
            if (e.code() != Status.Code.ALREADY_EXISTS) {
                throw e;
            }
            VmStatus s = orders.getVm(host, spec.getName());
            if (s.getEpoch() != epoch) {
                throw e;
            }
            if (start && s.getState() != VmState.VM_STATE_RUNNING) {
                orders.startVm(
                        host,
                        VmRequest.newBuilder()
                                .setName(spec.getName())
                                .setRequestId(requestId + ".start")
                                .build());
            }
        }
    }

    // ---- start

    Intent start(IntentRun run, Versioned<Intent> cur) throws Exception {
        return steps.claimed(cur, cur.value().getVm(), this::decideStart);
    }

    private Step decideStart(Fresh fresh, Intent i) throws Exception {
        String name = i.getVm();
        if (!fresh.exists()) {
            return refuse(i, CoordinatorException.noVm(name).getMessage());
        }
        VmRecord r = fresh.record();
        Versioned<RunningRecord> lock = fresh.lock();
        if (lock != null
                && lock.value().getHostId().equals(r.getOwner())
                && lock.value().getEpoch() == r.getEpoch()) {
            return done(
                    i,
                    set(
                            fresh.versioned(),
                            r.toBuilder()
                                    .setDesired(DesiredState.DESIRED_STATE_RUNNING)
                                    .setPhase(VmPhase.VM_PHASE_RUNNING)
                                    .setIntentId("")
                                    .setFailureReason("")
                                    .build()),
                    name + " already runs on " + r.getOwner());
        }
        if (!mine(r, i)) {
            // Decide where: its owner if that host is up and has room, otherwise wherever fits.
            String owner = r.getOwner();
            long epoch = r.getEpoch();
            String why = hostProblem(owner);
            if (why == null) {
                why = capacity.fitOn(r.getSpec(), owner);
            }
            if (why != null) {
                if (!view.registered(owner)
                        && gate.check(owner, name, clocks.nanoTime()) instanceof RestartGate.NotBefore held) {
                    return refuse(i, "cannot start " + name + " away from " + owner + " yet: " + held.reason());
                }
                Placement.Decision d = capacity.placeAndReserve(r.getSpec(), Set.of());
                if (d instanceof Placement.NoHost n) {
                    return refuse(i, "cannot start " + name + ": " + n.reason());
                }
                owner = ((Placement.Placed) d).host();
                epoch = r.getEpoch() + 1;
            }
            VmRecord next = r.toBuilder()
                    .setDesired(DesiredState.DESIRED_STATE_RUNNING)
                    .setOwner(owner)
                    .setEpoch(epoch)
                    .setPhase(VmPhase.VM_PHASE_STARTING)
                    .setRestartAttempts(0)
                    .setFailureReason("")
                    .setIntentId(i.getId())
                    .build();
            return advance(
                            set(fresh.versioned(), next),
                            i.toBuilder()
                                    .setState(IntentState.INTENT_STATE_RUNNING)
                                    .setHost(owner)
                                    .setFromEpoch(r.getEpoch())
                                    .setToEpoch(epoch)
                                    .build())
                    .releasing(() -> capacity.settle(name));
        }
        HostRecord host = view.hostRecord(r.getOwner());
        if (host == null) {
            return startFailed(fresh, i, r.getOwner() + " left the cluster");
        }
        return act(() -> {
            try {
                if (r.getEpoch() == i.getFromEpoch()) {
                    try {
                        orders.startVm(
                                host,
                                VmRequest.newBuilder()
                                        .setName(name)
                                        .setRequestId(i.getId())
                                        .build());
                    } catch (AgentCallException e) {
                        if (e.code() != Status.Code.NOT_FOUND) {
                            throw e;
                        }
                        defineOrStart(host, r.getSpec(), r.getEpoch(), true, i.getId());
                    }
                } else {
                    defineOrStart(host, r.getSpec(), r.getEpoch(), true, i.getId());
                }
            } catch (AgentCallException e) {
                return startFailed(fresh, i, e.getMessage());
            }
            return done(
                    i,
                    set(
                            fresh.versioned(),
                            r.toBuilder()
                                    .setPhase(VmPhase.VM_PHASE_RUNNING)
                                    .setIntentId("")
                                    .build()),
                    "started " + name + " on " + r.getOwner());
        });
    }

    private static Step startFailed(Fresh fresh, Intent i, String error) {
        VmRecord r = fresh.record();
        return failed(
                i,
                set(
                        fresh.versioned(),
                        r.toBuilder()
                                .setPhase(VmPhase.VM_PHASE_FAILED)
                                .setIntentId("")
                                .setFailureReason("start failed: " + error)
                                .build()),
                "cannot start " + i.getVm() + " on " + r.getOwner() + ": " + error);
    }

    // ---- stop

    Intent stop(IntentRun run, Versioned<Intent> cur) throws Exception {
        return steps.claimed(cur, cur.value().getVm(), this::decideStop);
    }

    private Step decideStop(Fresh fresh, Intent i) {
        String name = i.getVm();
        if (!fresh.exists()) {
            return refuse(i, CoordinatorException.noVm(name).getMessage());
        }
        VmRecord r = fresh.record();
        if (!mine(r, i)) {
            // Desired state first: from here on nothing restarts it, whatever happens to its host.
            return markStopping(fresh, i);
        }
        HostRecord host = view.hostRecord(r.getOwner());
        Step stopped = done(
                i,
                set(
                        fresh.versioned(),
                        r.toBuilder()
                                .setPhase(VmPhase.VM_PHASE_STOPPED)
                                .setIntentId("")
                                .setFailureReason("")
                                .build()),
                "stopped " + name
                        + (host == null ? " (its host " + r.getOwner() + " is down)" : " on " + r.getOwner()));
        HostRecord stale = staleHolder(r);
        if (host == null && stale == null) {
            return stopped;
        }
        return act(() -> {
            // Refused: the desired state says stopped; the reconciler keeps asking until the host does.
            String why = host == null ? null : orderOwner("stop", host, r, i, orders::stopVm);
            if (why == null && stale != null) {
                why = orderOwner("stop", stale, r, i, orders::stopVm);
            }
            return why == null ? stopped : refuse(i, why);
        });
    }

    /**
     * The live host that holds {@code r}'s run lock at an older epoch than the record's while the
     * record names another owner, or null. Its copy can never be resumed there (the agent keeps a
     * copy paused when it learns it may no longer own it, and holds the lock so that nobody else
     * starts the VM meanwhile); stopping or deleting the VM must reach that copy too, or it stays
     * paused forever and a delete waits in vain for the lock. The holder's lower epoch is the
     * proof that the order cannot hit a legitimate copy: a migration hands the lock over only
     * after the commit raised the epoch, under the migration's claim, which stop and delete wait for.
     */
    private HostRecord staleHolder(VmRecord r) {
        var lock = view.running(r.getSpec().getName());
        if (lock == null) {
            return null;
        }
        RunningRecord held = lock.value();
        if (held.getHostId().equals(r.getOwner()) || held.getEpoch() >= r.getEpoch()) {
            return null;
        }
        return view.hostRecord(held.getHostId());
    }

    /**
     * Sends the intent's order about its VM to {@code host} (its owner, or the holder of a stale
     * copy); null when it is carried out (or the host no longer has the VM), else why not.
     */
    private static String orderOwner(
            String verb, HostRecord host, VmRecord r, Intent i, BiConsumer<HostRecord, VmRequest> order) {
        try {
            order.accept(
                    host,
                    VmRequest.newBuilder()
                            .setName(i.getVm())
                            .setRequestId(i.getId())
                            .build());
            return null;
        } catch (AgentCallException e) {
            return e.code() == Status.Code.NOT_FOUND
                    ? null
                    : "cannot " + verb + " " + i.getVm() + " on " + host.getHostId() + ": " + e.getMessage();
        }
    }

    /** The record says the VM is meant to be stopped, under this intent (stop, delete). */
    private static Step markStopping(Fresh fresh, Intent i) {
        VmRecord r = fresh.record();
        return advance(
                set(
                        fresh.versioned(),
                        r.toBuilder()
                                .setDesired(DesiredState.DESIRED_STATE_STOPPED)
                                .setIntentId(i.getId())
                                .build()),
                i.toBuilder()
                        .setState(IntentState.INTENT_STATE_RUNNING)
                        .setHost(r.getOwner())
                        .build());
    }

    // ---- delete

    Intent delete(IntentRun run, Versioned<Intent> cur) throws Exception {
        return steps.claimed(cur, cur.value().getVm(), this::decideDelete);
    }

    private Step decideDelete(Fresh fresh, Intent i) {
        String name = i.getVm();
        if (!fresh.exists()) {
            return i.getState() == IntentState.INTENT_STATE_RUNNING
                    ? done(i, IntentStep.KEEP, "deleted " + name)
                    : refuse(i, CoordinatorException.noVm(name).getMessage());
        }
        VmRecord r = fresh.record();
        if (!mine(r, i)) {
            return markStopping(fresh, i);
        }
        HostRecord host = view.hostRecord(r.getOwner());
        HostRecord stale = staleHolder(r);
        return act(() -> {
            String why = host == null ? null : orderOwner("delete", host, r, i, orders::deleteVm);
            if (why == null && stale != null) {
                why = orderOwner("delete", stale, r, i, orders::deleteVm);
            }
            if (why != null) {
                return refuse(i, why);
            }
            // The run lock goes with the VM (released in the background by its host): wait for it, so
            // that a VM of the same name created next cannot meet it.
            long deadline = clocks.nanoTime() + LOCK_RELEASE.toNanos();
            Optional<Versioned<RunningRecord>> lock = store.running(name);
            while (lock.isPresent() && clocks.nanoTime() - deadline < 0) {
                guard.pause(Duration.ofMillis(100));
                lock = store.running(name);
            }
            if (lock.isPresent()) {
                return refuse(
                        i,
                        "cannot delete " + name + ": it still runs on "
                                + lock.get().value().getHostId());
            }
            return done(i, IntentStep.delete(fresh.versioned()), "deleted " + name);
        });
    }

    private void bestEffortDelete(HostRecord host, String vm, String requestId) {
        try {
            orders.deleteVm(
                    host,
                    VmRequest.newBuilder().setName(vm).setRequestId(requestId).build());
        } catch (AgentCallException e) {
            // nothing was left there, or the host is gone
        }
    }

    /** Why {@code host} cannot take VMs now, or null. */
    String hostProblem(String host) {
        if (!view.registered(host)) {
            return host + " is not alive in the cluster";
        }
        if (view.inMaintenance(host)) {
            return host + " is in maintenance";
        }
        return null;
    }
}
