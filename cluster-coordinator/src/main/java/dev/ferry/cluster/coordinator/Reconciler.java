package dev.ferry.cluster.coordinator;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.policy.RestartPolicy;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.cluster.DesiredState;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmPhase;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.zookeeper.KeeperException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The leader's periodic look at desired against actual state, from ZooKeeper alone (plus, for a
 * VM that should run on a live host but holds no run lock, one question to that host). It is how a
 * new leader picks up what its predecessor left, and how anything an event-driven path missed gets
 * done:
 * <ul>
 *   <li>open intents that no run of this term carries out are resumed (restarts waiting for
 *       capacity, or held by the restart gate, try again);
 *   <li>VMs meant to run, with no run lock, whose owner is gone, are restarted once the failover
 *       margin has passed since the host went (or since this leader took over, when it did not
 *       see the host go);
 *   <li>the same on a live owner that, asked twice a tick apart, does not run them (the VM died in
 *       place);
 *   <li>VMs meant to be stopped that still hold a run lock are stopped;
 *   <li>a VM that has run at one epoch for {@code restart-reset-after} has its restart attempts
 *       counted from zero again;
 *   <li>finished intents older than the retention go.
 * </ul>
 * Every wait here is on the monotonic clock; the records' wall-clock stamps decide nothing.
 */
final class Reconciler {
    private static final Logger log = LoggerFactory.getLogger(Reconciler.class);
    private static final int GC_PER_TICK = 200;
    /** How long before a VM meant to be stopped is asked again (its host may not have answered). */
    private static final Duration STOP_RETRY = Duration.ofSeconds(30);

    private final Intents intents;
    private final Claims claims;
    private final ClusterView view;
    private final Failover failover;
    private final AgentActions orders;
    private final Tx.Factory writes;
    private final WriteGuard guard;
    private final ClusterStore store;
    private final HostLosses losses;
    private final StableRuns stable;
    private final Clocks clocks;
    private final CoordinatorConfig config;
    private final AtomicBoolean ticking = new AtomicBoolean();
    private final Set<String> suspects = ConcurrentHashMap.newKeySet();
    /** When this term last asked for a VM to be stopped (monotonic ns). */
    private final Map<String, Long> stopAsked = new ConcurrentHashMap<>();
    /** When this term first saw each intent finished (monotonic ns): its retention counts from there. */
    private final Map<String, Long> finishedSeen = new ConcurrentHashMap<>();

    Reconciler(
            Intents intents,
            Claims claims,
            ClusterView view,
            Failover failover,
            AgentActions orders,
            Tx.Factory writes,
            HostLosses losses,
            StableRuns stable,
            CoordinatorConfig config) {
        this.intents = intents;
        this.claims = claims;
        this.view = view;
        this.failover = failover;
        this.orders = orders;
        this.writes = writes;
        this.guard = writes.guard();
        this.store = guard.store();
        this.losses = losses;
        this.stable = stable;
        this.clocks = writes.clocks();
        this.config = config;
    }

    void tick() {
        if (guard.closed() || !ticking.compareAndSet(false, true)) {
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
        Map<String, Versioned<Intent>> all = view.intents();
        Set<String> vmsWithOpenIntents = new HashSet<>();
        for (Versioned<Intent> v : all.values()) {
            Intent i = v.value();
            if (!Intents.isOpen(i)) {
                continue;
            }
            if (!i.getVm().isEmpty()) {
                vmsWithOpenIntents.add(i.getVm());
            }
            if (intents.running(i.getId()) == null) {
                intents.resume(v);
            }
        }

        Duration margin = config.failoverMargin();
        Set<String> deadOwners = new HashSet<>();
        List<VmRecord> inPlace = new ArrayList<>();
        Set<String> seen = new HashSet<>();
        for (Versioned<VmRecord> v : view.vms().values()) {
            VmRecord r = v.value();
            String name = r.getSpec().getName();
            if (!Failover.orphan(r) || claims.claimedBy(name) != null || vmsWithOpenIntents.contains(name)) {
                continue;
            }
            if (view.running(name) != null) {
                continue;
            }
            if (!view.alive(r.getOwner())) {
                if (losses.marginPassed(r.getOwner(), margin)) {
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
            failover.restartOrphans(deadOwners, 0);
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
            failover.restartOrphans(diedInPlace, 0);
        }

        long now = clocks.nanoTime();
        for (Versioned<VmRecord> v : view.vms().values()) {
            VmRecord r = v.value();
            String name = r.getSpec().getName();
            var lock = view.running(name);
            Long asked = stopAsked.get(name);
            if (r.getDesired() == DesiredState.DESIRED_STATE_STOPPED
                    && lock != null
                    && claims.claimedBy(name) == null
                    && !vmsWithOpenIntents.contains(name)
                    && view.alive(lock.value().getHostId())
                    && (asked == null || now - asked > STOP_RETRY.toNanos())) {
                stopAsked.put(name, now);
                log.info(
                        "{} is meant to be stopped but runs on {}; stopping it",
                        name,
                        lock.value().getHostId());
                intents.submit(Intents.intent(
                                IntentKind.INTENT_KIND_STOP,
                                "stop." + name + ".e" + r.getEpoch() + "." + clocks.wallMillis())
                        .setVm(name)
                        .build());
            }
        }

        resetStableAttempts(vmsWithOpenIntents);
        collectGarbage(all);
    }

    /** Asks the owner whether it runs {@code r} at the record's epoch. Unreachable: assume it does. */
    private boolean runsOnOwner(VmRecord r) {
        HostRecord host = view.hostRecord(r.getOwner());
        if (host == null) {
            return false;
        }
        try {
            VmStatus s = orders.getVm(host, r.getSpec().getName());
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

    /**
     * Restart attempts count failures that came close together: a VM that has run at its epoch for
     * {@code restart-reset-after} (as this leader watched it) starts from zero again, so that three
     * unrelated host failures over months do not leave it FAILED.
     */
    private void resetStableAttempts(Set<String> vmsWithOpenIntents) {
        Map<String, Versioned<VmRecord>> vms = view.vms();
        stable.retain(vms.keySet());
        for (Versioned<VmRecord> v : vms.values()) {
            VmRecord r = v.value();
            String name = r.getSpec().getName();
            Versioned<RunningRecord> lock = view.running(name);
            boolean running = r.getDesired() == DesiredState.DESIRED_STATE_RUNNING
                    && r.getPhase() == VmPhase.VM_PHASE_RUNNING
                    && lock != null
                    && lock.value().getHostId().equals(r.getOwner())
                    && lock.value().getEpoch() == r.getEpoch();
            Duration ranFor = stable.observe(name, r.getEpoch(), running);
            if (RestartPolicy.attemptsExpire(r.getRestartAttempts(), ranFor, config.restartResetAfter())
                    && !vmsWithOpenIntents.contains(name)) {
                resetAttempts(name, r.getEpoch(), ranFor);
            }
        }
    }

    /** One version-checked write, under a claim of the VM; a conflict leaves it to the next pass. */
    private void resetAttempts(String name, long epoch, Duration ranFor) {
        String claim = "reset-attempts." + name;
        if (!claims.claim(name, claim)) {
            return;
        }
        try {
            Versioned<VmRecord> rec = store.vm(name).orElse(null);
            if (rec == null || rec.value().getEpoch() != epoch || rec.value().getRestartAttempts() == 0) {
                return;
            }
            writes.tx()
                    .setVm(rec, rec.value().toBuilder().setRestartAttempts(0).build())
                    .commit();
            log.info(
                    "{} ran {} s at epoch {} on {}: its {} restart attempt(s) count from zero again",
                    name,
                    ranFor.toSeconds(),
                    epoch,
                    rec.value().getOwner(),
                    rec.value().getRestartAttempts());
        } catch (NotLeaderException e) {
            throw e;
        } catch (KeeperException.BadVersionException | KeeperException.NoNodeException e) {
            // changed meanwhile: the next pass looks again
        } catch (Exception e) {
            log.warn("cannot reset the restart attempts of {}: {}", name, e.toString());
        } finally {
            claims.unclaim(name, claim);
        }
    }

    private void collectGarbage(Map<String, Versioned<Intent>> all) {
        long now = clocks.nanoTime();
        long retention = config.intentRetention().toNanos();
        finishedSeen.keySet().retainAll(all.keySet());
        Map<String, Versioned<Intent>> old = new HashMap<>();
        for (var e : all.entrySet()) {
            if (Intents.isOpen(e.getValue().value())) {
                continue;
            }
            long since = finishedSeen.computeIfAbsent(e.getKey(), k -> now);
            if (now - since > retention) {
                old.put(e.getKey(), e.getValue());
            }
        }
        int removed = 0;
        for (Versioned<Intent> v : old.values()) {
            if (removed++ >= GC_PER_TICK) {
                break;
            }
            try {
                guard.write(List.of(store.delete(v.path(), v.version())));
            } catch (NotLeaderException e) {
                throw e;
            } catch (Exception e) {
                // changed or gone meanwhile: next pass
            }
        }
    }
}
