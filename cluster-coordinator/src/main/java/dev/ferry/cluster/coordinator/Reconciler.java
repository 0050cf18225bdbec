package dev.ferry.cluster.coordinator;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.cluster.DesiredState;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import io.grpc.Status;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The leader's periodic look at desired against actual state, from ZooKeeper alone (plus, for a
 * VM that should run on a live host but holds no run lock, one question to that host). It is how a
 * new leader picks up what its predecessor left, and how anything an event-driven path missed gets
 * done:
 * <ul>
 *   <li>open intents that no run of this term carries out are resumed (restarts waiting for
 *       capacity try again);
 *   <li>VMs meant to run, with no run lock, whose owner is gone, are restarted once the failover
 *       margin has passed since the host went (or since this leader took over, when it did not
 *       see the host go);
 *   <li>the same on a live owner that, asked twice a tick apart, does not run them (the VM died in
 *       place);
 *   <li>VMs meant to be stopped that still hold a run lock are stopped;
 *   <li>finished intents older than the retention go.
 * </ul>
 */
final class Reconciler {
    private static final Logger log = LoggerFactory.getLogger(Reconciler.class);
    private static final int GC_PER_TICK = 200;

    private final Term term;
    private final AtomicBoolean ticking = new AtomicBoolean();
    private final Set<String> suspects = ConcurrentHashMap.newKeySet();
    /** When this term last asked for a VM to be stopped (wall ms): a host that does not answer is asked again later. */
    private final Map<String, Long> stopAsked = new ConcurrentHashMap<>();

    private static final long STOP_RETRY_MS = 30_000;

    Reconciler(Term term) {
        this.term = term;
    }

    void tick() {
        if (term.closed() || !ticking.compareAndSet(false, true)) {
            return;
        }
        try {
            reconcile();
        } catch (NotLeaderException e) {
            // the term is over
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            log.warn("reconcile pass failed; next pass retries: {}", e.toString());
        } finally {
            ticking.set(false);
        }
    }

    private void reconcile() throws Exception {
        long now = System.currentTimeMillis();
        Map<String, Versioned<Intent>> intents = term.view.intents();
        Set<String> vmsWithOpenIntents = new HashSet<>();
        for (Versioned<Intent> v : intents.values()) {
            Intent i = v.value();
            if (!Term.isOpen(i)) {
                continue;
            }
            if (!i.getVm().isEmpty()) {
                vmsWithOpenIntents.add(i.getVm());
            }
            if (term.running(i.getId()) == null) {
                term.resume(v);
            }
        }

        long margin = term.config.failoverMargin().toMillis();
        Set<String> deadOwners = new HashSet<>();
        List<VmRecord> inPlace = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        for (Versioned<VmRecord> v : term.view.vms().values()) {
            VmRecord r = v.value();
            String name = r.getSpec().getName();
            if (!Failover.orphan(r) || term.claimedBy(name) != null || vmsWithOpenIntents.contains(name)) {
                continue;
            }
            if (term.view.running(name) != null) {
                continue;
            }
            if (!term.view.alive(r.getOwner())) {
                Long lost = term.failover.lostAt(r.getOwner());
                boolean due = lost != null ? now - lost >= margin : term.age().toMillis() >= margin;
                if (due) {
                    deadOwners.add(r.getOwner());
                }
            } else {
                seen.add(name);
                if (suspects.contains(name)) {
                    inPlace.add(r);
                }
            }
        }
        suspects.retainAll(seen);
        suspects.addAll(seen);
        if (!deadOwners.isEmpty()) {
            term.failover.restartOrphans(deadOwners, 0);
        }
        Set<String> diedInPlace = new HashSet<>();
        for (VmRecord r : inPlace) {
            if (!runsOnOwner(r)) {
                diedInPlace.add(r.getOwner());
                log.warn(
                        "{} should run on {} at epoch {} but does not; restarting it",
                        r.getSpec().getName(),
                        r.getOwner(),
                        r.getEpoch());
            }
        }
        if (!diedInPlace.isEmpty()) {
            term.failover.restartOrphans(diedInPlace, 0);
        }

        for (Versioned<VmRecord> v : term.view.vms().values()) {
            VmRecord r = v.value();
            String name = r.getSpec().getName();
            var lock = term.view.running(name);
            if (r.getDesired() == DesiredState.DESIRED_STATE_STOPPED
                    && lock != null
                    && term.claimedBy(name) == null
                    && !vmsWithOpenIntents.contains(name)
                    && term.view.alive(lock.value().getHostId())
                    && now - stopAsked.getOrDefault(name, 0L) > STOP_RETRY_MS) {
                stopAsked.put(name, now);
                log.info(
                        "{} is meant to be stopped but runs on {}; stopping it",
                        name,
                        lock.value().getHostId());
                term.submit(Term.intent(IntentKind.INTENT_KIND_STOP, "stop." + name + ".e" + r.getEpoch() + "." + now)
                        .setVm(name)
                        .build());
            }
        }

        collectGarbage(intents, now);
    }

    /** Asks the owner whether it runs {@code r} at the record's epoch. Unreachable: assume it does. */
    private boolean runsOnOwner(VmRecord r) {
        HostRecord host = term.hostRecord(r.getOwner());
        if (host == null) {
            return false;
        }
        try {
            VmStatus s = term.agents.getVm(host, r.getSpec().getName());
            return s.getEpoch() == r.getEpoch()
                    && (s.getState() == VmState.VM_STATE_RUNNING
                            || s.getState() == VmState.VM_STATE_PAUSED
                            || s.getState() == VmState.VM_STATE_MIGRATING_OUT
                            || s.getState() == VmState.VM_STATE_INCOMING
                            // Frozen by a fence and about to take its run lock back: not dead.
                            || s.getState() == VmState.VM_STATE_FENCED);
        } catch (AgentCallException e) {
            return e.code() != Status.Code.NOT_FOUND;
        }
    }

    private void collectGarbage(Map<String, Versioned<Intent>> intents, long now) {
        long retention = term.config.intentRetention().toMillis();
        int removed = 0;
        Map<String, Versioned<Intent>> old = new HashMap<>();
        for (var e : intents.entrySet()) {
            Intent i = e.getValue().value();
            long end = Math.max(i.getFinishedAtMs(), i.getUpdatedAtMs());
            if (!Term.isOpen(i) && now - end > retention) {
                old.put(e.getKey(), e.getValue());
            }
        }
        for (Versioned<Intent> v : old.values()) {
            if (removed++ >= GC_PER_TICK) {
                break;
            }
            try {
                term.write(List.of(term.store.delete(v.path(), v.version())));
            } catch (NotLeaderException e) {
                throw e;
            } catch (Exception e) {
                // changed or gone meanwhile: next pass
            }
        }
    }
}
