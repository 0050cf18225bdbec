package dev.ferry.cluster.coordinator;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.policy.Placement;
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
import org.apache.zookeeper.KeeperException;

/**
 * Create, start, stop and delete, each an intent. The record changes first (desired state, owner,
 * phase, in the same transaction as the intent), then the agent acts, then the record and the
 * intent say how it ended. A new leader resuming one of them looks at the record: the intent id
 * in it says which steps already happened.
 */
final class VmOperations {
    private static final int CONFLICT_RETRIES = 10;

    private final Term term;

    VmOperations(Term term) {
        this.term = term;
    }

    static VmRecord.Builder record(VmSpec spec) {
        return VmRecord.newBuilder().setSchemaVersion(Records.SCHEMA_VERSION).setSpec(spec);
    }

    // ---- create

    Intent create(IntentRun run, Versioned<Intent> cur) throws Exception {
        Intent i = cur.value();
        VmSpec spec = i.getSpec();
        String name = spec.getName();
        if (!term.claim(name, i.getId())) {
            return term.fail(cur, busy(name));
        }
        try {
            for (int attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
                Versioned<VmRecord> rec = term.freshVm(name);
                if (rec == null) {
                    String target;
                    if (!i.getHost().isEmpty()) {
                        String why = hostProblem(i.getHost());
                        if (why == null) {
                            why = term.capacity.fitOn(spec, i.getHost());
                        }
                        if (why != null) {
                            return term.fail(cur, "cannot create " + name + " on " + i.getHost() + ": " + why);
                        }
                        target = i.getHost();
                    } else {
                        Placement.Decision d = term.capacity.placeAndReserve(spec, Set.of());
                        if (d instanceof Placement.NoHost n) {
                            return term.fail(cur, n.reason());
                        }
                        target = ((Placement.Placed) d).host();
                    }
                    VmRecord r = record(spec)
                            .setDesired(
                                    i.getStart()
                                            ? DesiredState.DESIRED_STATE_RUNNING
                                            : DesiredState.DESIRED_STATE_STOPPED)
                            .setOwner(target)
                            .setEpoch(1)
                            .setPhase(i.getStart() ? VmPhase.VM_PHASE_STARTING : VmPhase.VM_PHASE_STOPPED)
                            .setIntentId(i.getId())
                            .setUpdatedAtMs(System.currentTimeMillis())
                            .build();
                    Term.Tx tx = term.tx().createVm(name, r);
                    Versioned<Intent> next = tx.setIntent(
                            cur,
                            i.toBuilder()
                                    .setState(IntentState.INTENT_STATE_RUNNING)
                                    .setHost(target)
                                    .build());
                    try {
                        tx.commit();
                    } catch (KeeperException e) {
                        term.capacity.settle(name);
                        if (e.code() == KeeperException.Code.NODEEXISTS
                                || e.code() == KeeperException.Code.BADVERSION) {
                            cur = term.store.intent(i.getId()).orElseThrow();
                            i = cur.value();
                            if (!Term.isOpen(i)) {
                                return i; // our own write landed before the conflict: it is over
                            }
                            continue;
                        }
                        throw e;
                    }
                    term.capacity.settle(name);
                    cur = next;
                    i = next.value();
                    continue;
                }
                VmRecord r = rec.value();
                if (!r.getIntentId().equals(i.getId())) {
                    return term.fail(cur, "a VM named '" + name + "' already exists (owned by " + r.getOwner() + ")");
                }
                HostRecord host = term.hostRecord(r.getOwner());
                if (host == null) {
                    return rollBackCreate(cur, rec, r.getOwner() + " left the cluster before " + name + " was created");
                }
                try {
                    defineOrStart(host, spec, r.getEpoch(), i.getStart(), i.getId());
                } catch (AgentCallException e) {
                    bestEffortDelete(host, name, i.getId() + ".undo");
                    return rollBackCreate(
                            cur, rec, "cannot create " + name + " on " + r.getOwner() + ": " + e.getMessage());
                }
                Term.Tx tx = term.tx()
                        .setVm(
                                rec,
                                r.toBuilder()
                                        .setIntentId("")
                                        .setPhase(i.getStart() ? VmPhase.VM_PHASE_RUNNING : VmPhase.VM_PHASE_STOPPED)
                                        .build());
                try {
                    return term.finish(
                            tx,
                            cur,
                            IntentState.INTENT_STATE_DONE,
                            "created " + name + " on " + r.getOwner() + (i.getStart() ? " (running)" : ""));
                } catch (KeeperException.BadVersionException e) {
                    cur = term.store.intent(i.getId()).orElseThrow();
                    i = cur.value();
                    if (!Term.isOpen(i)) {
                        return i; // our own write landed before the conflict: it is over
                    }
                }
            }
            return term.fail(cur, "the record of " + name + " kept changing; try again");
        } finally {
            term.unclaim(name, i.getId());
        }
    }

    private Intent rollBackCreate(Versioned<Intent> cur, Versioned<VmRecord> rec, String why) throws Exception {
        Term.Tx tx = term.tx().deleteVm(rec);
        return term.finish(tx, cur, IntentState.INTENT_STATE_FAILED, why);
    }

    /** Asks {@code host} to define (and start) the VM at {@code epoch}; a retry finds it done. */
    private void defineOrStart(HostRecord host, VmSpec spec, long epoch, boolean start, String requestId) {
        try {
            term.agents.createVm(
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
            VmStatus s = term.agents.getVm(host, spec.getName());
            if (s.getEpoch() != epoch) {
                throw e;
            }
            if (start && s.getState() != VmState.VM_STATE_RUNNING) {
                term.agents.startVm(
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
        Intent i = cur.value();
        String name = i.getVm();
        if (!term.claim(name, i.getId())) {
            return term.fail(cur, busy(name));
        }
        try {
            for (int attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
                Versioned<VmRecord> rec = term.freshVm(name);
                if (rec == null) {
                    return term.fail(cur, CoordinatorException.noVm(name).getMessage());
                }
                VmRecord r = rec.value();
                Versioned<RunningRecord> lock = term.store.running(name).orElse(null);
                if (lock != null
                        && lock.value().getHostId().equals(r.getOwner())
                        && lock.value().getEpoch() == r.getEpoch()) {
                    Term.Tx tx = term.tx()
                            .setVm(
                                    rec,
                                    r.toBuilder()
                                            .setDesired(DesiredState.DESIRED_STATE_RUNNING)
                                            .setPhase(VmPhase.VM_PHASE_RUNNING)
                                            .setIntentId("")
                                            .setFailureReason("")
                                            .build());
                    try {
                        return term.finish(
                                tx, cur, IntentState.INTENT_STATE_DONE, name + " already runs on " + r.getOwner());
                    } catch (KeeperException.BadVersionException e) {
                        continue;
                    }
                }
                if (!r.getIntentId().equals(i.getId())) {
                    // Decide where: its owner if that host is up and has room, otherwise wherever fits.
                    String owner = r.getOwner();
                    long epoch = r.getEpoch();
                    String why = hostProblem(owner);
                    if (why == null) {
                        why = term.capacity.fitOn(r.getSpec(), owner);
                    }
                    if (why != null) {
                        Placement.Decision d = term.capacity.placeAndReserve(r.getSpec(), Set.of());
                        if (d instanceof Placement.NoHost n) {
                            return term.fail(cur, "cannot start " + name + ": " + n.reason());
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
                    Term.Tx tx = term.tx().setVm(rec, next);
                    Versioned<Intent> ni = tx.setIntent(
                            cur,
                            i.toBuilder()
                                    .setState(IntentState.INTENT_STATE_RUNNING)
                                    .setHost(owner)
                                    .setFromEpoch(r.getEpoch())
                                    .setToEpoch(epoch)
                                    .build());
                    try {
                        tx.commit();
                    } catch (KeeperException.BadVersionException e) {
                        term.capacity.settle(name);
                        cur = term.store.intent(i.getId()).orElseThrow();
                        i = cur.value();
                        if (!Term.isOpen(i)) {
                            return i; // our own write landed before the conflict: it is over
                        }
                        continue;
                    }
                    term.capacity.settle(name);
                    cur = ni;
                    i = ni.value();
                    continue;
                }
                HostRecord host = term.hostRecord(r.getOwner());
                String error = null;
                if (host == null) {
                    error = r.getOwner() + " left the cluster";
                } else {
                    try {
                        if (r.getEpoch() == i.getFromEpoch()) {
                            try {
                                term.agents.startVm(
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
                        error = e.getMessage();
                    }
                }
                Term.Tx tx = term.tx();
                if (error == null) {
                    tx.setVm(
                            rec,
                            r.toBuilder()
                                    .setPhase(VmPhase.VM_PHASE_RUNNING)
                                    .setIntentId("")
                                    .build());
                } else {
                    tx.setVm(
                            rec,
                            r.toBuilder()
                                    .setPhase(VmPhase.VM_PHASE_FAILED)
                                    .setIntentId("")
                                    .setFailureReason("start failed: " + error)
                                    .build());
                }
                try {
                    return error == null
                            ? term.finish(
                                    tx, cur, IntentState.INTENT_STATE_DONE, "started " + name + " on " + r.getOwner())
                            : term.finish(
                                    tx,
                                    cur,
                                    IntentState.INTENT_STATE_FAILED,
                                    "cannot start " + name + " on " + r.getOwner() + ": " + error);
                } catch (KeeperException.BadVersionException e) {
                    cur = term.store.intent(i.getId()).orElseThrow();
                    i = cur.value();
                    if (!Term.isOpen(i)) {
                        return i; // our own write landed before the conflict: it is over
                    }
                }
            }
            return term.fail(cur, "the record of " + name + " kept changing; try again");
        } finally {
            term.unclaim(name, i.getId());
        }
    }

    // ---- stop

    Intent stop(IntentRun run, Versioned<Intent> cur) throws Exception {
        Intent i = cur.value();
        String name = i.getVm();
        if (!term.claim(name, i.getId())) {
            return term.fail(cur, busy(name));
        }
        try {
            for (int attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
                Versioned<VmRecord> rec = term.freshVm(name);
                if (rec == null) {
                    return term.fail(cur, CoordinatorException.noVm(name).getMessage());
                }
                VmRecord r = rec.value();
                if (!r.getIntentId().equals(i.getId())) {
                    // Desired state first: from here on nothing restarts it, whatever happens to its host.
                    Term.Tx tx = term.tx()
                            .setVm(
                                    rec,
                                    r.toBuilder()
                                            .setDesired(DesiredState.DESIRED_STATE_STOPPED)
                                            .setIntentId(i.getId())
                                            .build());
                    Versioned<Intent> ni = tx.setIntent(
                            cur,
                            i.toBuilder()
                                    .setState(IntentState.INTENT_STATE_RUNNING)
                                    .setHost(r.getOwner())
                                    .build());
                    try {
                        tx.commit();
                    } catch (KeeperException.BadVersionException e) {
                        cur = term.store.intent(i.getId()).orElseThrow();
                        i = cur.value();
                        if (!Term.isOpen(i)) {
                            return i; // our own write landed before the conflict: it is over
                        }
                        continue;
                    }
                    cur = ni;
                    i = ni.value();
                    continue;
                }
                HostRecord host = term.hostRecord(r.getOwner());
                if (host != null) {
                    try {
                        term.agents.stopVm(
                                host,
                                VmRequest.newBuilder()
                                        .setName(name)
                                        .setRequestId(i.getId())
                                        .build());
                    } catch (AgentCallException e) {
                        if (e.code() != Status.Code.NOT_FOUND) {
                            // The desired state says stopped; the reconciler keeps asking until the host does.
                            return term.fail(
                                    cur, "cannot stop " + name + " on " + r.getOwner() + ": " + e.getMessage());
                        }
                    }
                }
                Term.Tx tx = term.tx()
                        .setVm(
                                rec,
                                r.toBuilder()
                                        .setPhase(VmPhase.VM_PHASE_STOPPED)
                                        .setIntentId("")
                                        .setFailureReason("")
                                        .build());
                try {
                    return term.finish(
                            tx,
                            cur,
                            IntentState.INTENT_STATE_DONE,
                            "stopped " + name
                                    + (host == null
                                            ? " (its host " + r.getOwner() + " is down)"
                                            : " on " + r.getOwner()));
                } catch (KeeperException.BadVersionException e) {
                    cur = term.store.intent(i.getId()).orElseThrow();
                    i = cur.value();
                    if (!Term.isOpen(i)) {
                        return i; // our own write landed before the conflict: it is over
                    }
                }
            }
            return term.fail(cur, "the record of " + name + " kept changing; try again");
        } finally {
            term.unclaim(name, i.getId());
        }
    }

    // ---- delete

    Intent delete(IntentRun run, Versioned<Intent> cur) throws Exception {
        Intent i = cur.value();
        String name = i.getVm();
        if (!term.claim(name, i.getId())) {
            return term.fail(cur, busy(name));
        }
        try {
            for (int attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
                Versioned<VmRecord> rec = term.freshVm(name);
                if (rec == null) {
                    return i.getState() == IntentState.INTENT_STATE_RUNNING
                            ? term.finish(term.tx(), cur, IntentState.INTENT_STATE_DONE, "deleted " + name)
                            : term.fail(cur, CoordinatorException.noVm(name).getMessage());
                }
                VmRecord r = rec.value();
                if (!r.getIntentId().equals(i.getId())) {
                    Term.Tx tx = term.tx()
                            .setVm(
                                    rec,
                                    r.toBuilder()
                                            .setDesired(DesiredState.DESIRED_STATE_STOPPED)
                                            .setIntentId(i.getId())
                                            .build());
                    Versioned<Intent> ni = tx.setIntent(
                            cur,
                            i.toBuilder()
                                    .setState(IntentState.INTENT_STATE_RUNNING)
                                    .setHost(r.getOwner())
                                    .build());
                    try {
                        tx.commit();
                    } catch (KeeperException.BadVersionException e) {
                        cur = term.store.intent(i.getId()).orElseThrow();
                        i = cur.value();
                        if (!Term.isOpen(i)) {
                            return i; // our own write landed before the conflict: it is over
                        }
                        continue;
                    }
                    cur = ni;
                    i = ni.value();
                    continue;
                }
                HostRecord host = term.hostRecord(r.getOwner());
                if (host != null) {
                    try {
                        term.agents.deleteVm(
                                host,
                                VmRequest.newBuilder()
                                        .setName(name)
                                        .setRequestId(i.getId())
                                        .build());
                    } catch (AgentCallException e) {
                        if (e.code() != Status.Code.NOT_FOUND) {
                            return term.fail(
                                    cur, "cannot delete " + name + " on " + r.getOwner() + ": " + e.getMessage());
                        }
                    }
                }
                // The run lock goes with the VM (released in the background by its host): wait for it, so
                // that a VM of the same name created next cannot meet it.
                long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
                Optional<Versioned<RunningRecord>> lock = term.store.running(name);
                while (lock.isPresent() && System.nanoTime() < deadline) {
                    term.pause(Duration.ofMillis(100));
                    lock = term.store.running(name);
                }
                if (lock.isPresent()) {
                    return term.fail(
                            cur,
                            "cannot delete " + name + ": it still runs on "
                                    + lock.get().value().getHostId());
                }
                Term.Tx tx = term.tx().deleteVm(rec);
                try {
                    return term.finish(tx, cur, IntentState.INTENT_STATE_DONE, "deleted " + name);
                } catch (KeeperException.BadVersionException e) {
                    cur = term.store.intent(i.getId()).orElseThrow();
                    i = cur.value();
                    if (!Term.isOpen(i)) {
                        return i; // our own write landed before the conflict: it is over
                    }
                }
            }
            return term.fail(cur, "the record of " + name + " kept changing; try again");
        } finally {
            term.unclaim(name, i.getId());
        }
    }

    private void bestEffortDelete(HostRecord host, String vm, String requestId) {
        try {
            term.agents.deleteVm(
                    host,
                    VmRequest.newBuilder().setName(vm).setRequestId(requestId).build());
        } catch (AgentCallException e) {
            // nothing was left there, or the host is gone
        }
    }

    /** Why {@code host} cannot take VMs now, or null. */
    String hostProblem(String host) {
        if (!term.alive(host)) {
            return host + " is not alive in the cluster";
        }
        if (term.view.inMaintenance(host)) {
            return host + " is in maintenance";
        }
        return null;
    }

    String busy(String vm) {
        String by = term.claimedBy(vm);
        return "VM '" + vm + "' is busy" + (by == null ? "" : " with intent " + by) + "; try again when it is done";
    }
}
