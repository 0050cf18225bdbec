package dev.ferry.cluster.coordinator;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.policy.Placement;
import dev.ferry.cluster.policy.RestartPolicy;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.cluster.DesiredState;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmPhase;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.KeeperException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Host failure: the host's session ended on the ZooKeeper server ({@code /hosts/<h>} went, and
 * with it the run locks of its VMs). After the failover margin, every VM the host owned that is
 * meant to run and holds no run lock restarts elsewhere, each through a RESTART intent: placed by
 * {@link RestartPolicy} (priority, capacity, anti-affinity), its record moved (owner, epoch + 1,
 * attempts + 1) in the same transaction as the intent, then started cold from its spec by the new
 * owner, which takes the run lock only if the record names it at that epoch.
 */
final class Failover implements ClusterView.HostListener {
    private static final Logger log = LoggerFactory.getLogger(Failover.class);
    /** How long a restart waits for a stale run lock to go before it tries another host. */
    private static final Duration LOCK_WAIT = Duration.ofSeconds(30);

    private final Term term;
    /** When this term saw each host go (wall clock ms). */
    private final Map<String, Long> lostAt = new ConcurrentHashMap<>();

    Failover(Term term) {
        this.term = term;
    }

    Long lostAt(String host) {
        return lostAt.get(host);
    }

    /** Hosts this term saw go. */
    java.util.Set<String> lostHosts() {
        return lostAt.keySet();
    }

    @Override
    public void hostLost(String host, long session) {
        if (term.closed()) {
            return;
        }
        long now = System.currentTimeMillis();
        lostAt.put(host, now);
        Duration margin = term.config.failoverMargin();
        log.warn(
                "host {} is gone (session 0x{} ended); restarting its VMs in {} ms",
                host,
                Long.toHexString(session),
                margin.toMillis());
        term.timers.schedule(
                () -> term.workers.execute(() -> {
                    try {
                        restartOrphans(Set.of(host), now);
                    } catch (NotLeaderException e) {
                        // the next leader does it
                    } catch (Exception e) {
                        log.error("failover of {} failed; the reconciler retries", host, e);
                    }
                }),
                margin.toMillis(),
                TimeUnit.MILLISECONDS);
    }

    @Override
    public void hostJoined(String host, long session) {
        log.info("host {} joined (session 0x{})", host, Long.toHexString(session));
    }

    /**
     * Restarts the VMs of {@code owners} that are meant to run and hold no run lock. Decided in one
     * plan (so capacity is shared fairly and by priority); each carried out by its own intent.
     */
    synchronized void restartOrphans(Set<String> owners, long hostLostAtMs) throws Exception {
        term.checkOpen();
        List<RestartPolicy.Candidate> candidates = new ArrayList<>();
        Map<String, Versioned<VmRecord>> records = new java.util.HashMap<>();
        for (Versioned<VmRecord> v : term.view.vms().values()) {
            VmRecord r = v.value();
            String name = r.getSpec().getName();
            if (!owners.contains(r.getOwner())
                    || !orphan(r)
                    || term.claimedBy(name) != null
                    || term.running(restartId(name, r.getEpoch())) != null) {
                continue;
            }
            if (term.view.running(name) != null) {
                continue;
            }
            records.put(name, v);
            VmSpec s = r.getSpec();
            candidates.add(new RestartPolicy.Candidate(
                    name,
                    s.getHa().getRestartPriority(),
                    s.getMemoryBytes(),
                    Math.max(1, s.getVcpus()),
                    s.getHa().getAntiAffinityGroup()));
        }
        if (candidates.isEmpty()) {
            return;
        }
        RestartPolicy.Plan plan;
        synchronized (term.capacity) {
            Set<String> exclude = new HashSet<>(owners);
            plan = RestartPolicy.plan(candidates, term.capacity.hostsExcept(records.keySet()), exclude);
            plan.placed().forEach(term.capacity::reserve);
        }
        log.info(
                "restarting {} VM(s) of {}: {}{}",
                plan.placed().size() + plan.waiting().size(),
                owners,
                plan.placed(),
                plan.waiting().isEmpty()
                        ? ""
                        : "; waiting for capacity: " + plan.waiting().keySet());
        for (RestartPolicy.Candidate c : RestartPolicy.order(candidates)) {
            VmRecord r = records.get(c.vm()).value();
            String target = plan.placed().getOrDefault(c.vm(), "");
            Intent intent = Term.intent(IntentKind.INTENT_KIND_RESTART, restartId(c.vm(), r.getEpoch()))
                    .setVm(c.vm())
                    .setSource(r.getOwner())
                    .setFromEpoch(r.getEpoch())
                    .setHost(target)
                    .setHostLostAtMs(hostLostAtMs > 0 ? hostLostAtMs : lostAt.getOrDefault(r.getOwner(), 0L))
                    .setError(
                            target.isEmpty()
                                    ? "waiting for capacity: " + plan.waiting().get(c.vm())
                                    : "")
                    .build();
            try {
                IntentRun run = term.submit(intent);
                if (run.outcome.isDone()) {
                    term.capacity.settle(c.vm()); // it had ended already: nothing will use the reservation
                }
            } catch (NotLeaderException e) {
                throw e;
            } catch (Exception e) {
                log.error("cannot start the restart of {}: {}", c.vm(), e.toString());
                term.capacity.settle(c.vm());
            }
        }
    }

    /** A VM whose record says it should run and has not been given up on. */
    static boolean orphan(VmRecord r) {
        return r.getDesired() == DesiredState.DESIRED_STATE_RUNNING && r.getPhase() != VmPhase.VM_PHASE_FAILED;
    }

    static String restartId(String vm, long epoch) {
        return "restart." + vm + ".e" + epoch;
    }

    // ---- one VM's restart

    Intent restart(IntentRun run, Versioned<Intent> cur) throws Exception {
        Intent i = cur.value();
        String name = i.getVm();
        if (!term.claim(name, i.getId())) {
            // Another intent works on it (a stop, a start): the reconciler looks again later.
            term.capacity.settle(name);
            return i;
        }
        Set<String> triedHosts = new HashSet<>();
        triedHosts.add(i.getSource());
        try {
            while (true) {
                term.checkOpen();
                Versioned<VmRecord> rec = term.freshVm(name);
                if (rec == null) {
                    return term.finish(
                            term.tx(), cur, IntentState.INTENT_STATE_DONE, name + " was deleted; nothing to restart");
                }
                VmRecord r = rec.value();
                boolean decided = r.getIntentId().equals(i.getId())
                        && r.getOwner().equals(i.getHost())
                        && r.getEpoch() == i.getToEpoch()
                        && i.getToEpoch() > 0;
                if (!decided) {
                    if (r.getDesired() != DesiredState.DESIRED_STATE_RUNNING) {
                        return term.finish(
                                term.tx(), cur, IntentState.INTENT_STATE_DONE, name + " is meant to be stopped now");
                    }
                    if (r.getEpoch() != i.getFromEpoch() || !r.getOwner().equals(i.getSource())) {
                        return term.finish(
                                term.tx(),
                                cur,
                                IntentState.INTENT_STATE_DONE,
                                name + " already moved to " + r.getOwner() + " at epoch " + r.getEpoch());
                    }
                    Versioned<RunningRecord> lock = term.store.running(name).orElse(null);
                    if (lock != null) {
                        return term.finish(
                                term.tx(),
                                cur,
                                IntentState.INTENT_STATE_DONE,
                                name + " runs on " + lock.value().getHostId() + " at epoch "
                                        + lock.value().getEpoch() + "; not restarted");
                    }
                    int max = RestartPolicy.maxAttempts(r.getSpec().getHa().getMaxRestartAttempts());
                    if (!RestartPolicy.mayRestart(
                            r.getRestartAttempts(), r.getSpec().getHa().getMaxRestartAttempts())) {
                        String why = "host " + i.getSource() + " failed; gave up after " + r.getRestartAttempts()
                                + " restart attempt" + (r.getRestartAttempts() == 1 ? "" : "s") + " (max " + max + ")";
                        Term.Tx tx = term.tx()
                                .setVm(
                                        rec,
                                        r.toBuilder()
                                                .setPhase(VmPhase.VM_PHASE_FAILED)
                                                .setFailureReason(why)
                                                .setIntentId("")
                                                .build());
                        term.capacity.settle(name);
                        return term.finish(tx, cur, IntentState.INTENT_STATE_FAILED, name + ": " + why);
                    }
                    String target = i.getHost();
                    if (target.isEmpty()
                            || triedHosts.contains(target)
                            || !term.view.alive(target)
                            || term.view.inMaintenance(target)) {
                        Placement.Decision d = term.capacity.placeAndReserve(r.getSpec(), triedHosts);
                        if (d instanceof Placement.NoHost n) {
                            String waitingFor = "waiting for capacity: " + n.reason();
                            if (i.getState() == IntentState.INTENT_STATE_PENDING
                                    && waitingFor.equals(i.getError())
                                    && waitingFor.equals(r.getFailureReason())) {
                                return i; // nothing new; the reconciler tries again
                            }
                            Term.Tx tx = term.tx()
                                    .setVm(
                                            rec,
                                            r.toBuilder()
                                                    .setPhase(VmPhase.VM_PHASE_RESTARTING)
                                                    .setFailureReason(waitingFor)
                                                    .build());
                            Versioned<Intent> waiting = tx.setIntent(
                                    cur,
                                    i.toBuilder()
                                            .setState(IntentState.INTENT_STATE_PENDING)
                                            .setHost("")
                                            .setError("waiting for capacity: " + n.reason())
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
                            log.warn("{} waits for capacity: {}", name, n.reason());
                            return waiting.value();
                        }
                        target = ((Placement.Placed) d).host();
                    }
                    long epoch = r.getEpoch() + 1;
                    Term.Tx tx = term.tx()
                            .setVm(
                                    rec,
                                    r.toBuilder()
                                            .setOwner(target)
                                            .setEpoch(epoch)
                                            .setRestartAttempts(r.getRestartAttempts() + 1)
                                            .setPhase(VmPhase.VM_PHASE_RESTARTING)
                                            .setFailureReason("")
                                            .setIntentId(i.getId())
                                            .build());
                    Versioned<Intent> ni = tx.setIntent(
                            cur,
                            i.toBuilder()
                                    .setState(IntentState.INTENT_STATE_RUNNING)
                                    .setHost(target)
                                    .setToEpoch(epoch)
                                    .setError("")
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
                    log.info(
                            "restart {}: {} at epoch {} -> {} at epoch {} (attempt {})",
                            i.getId(),
                            r.getOwner(),
                            r.getEpoch(),
                            target,
                            epoch,
                            r.getRestartAttempts() + 1);
                    cur = ni;
                    i = ni.value();
                    continue;
                }
                // Decided: the record names the target at the new epoch. Start it there.
                String failure = startOn(r, i);
                if (failure == null) {
                    Term.Tx tx = term.tx()
                            .setVm(
                                    rec,
                                    r.toBuilder()
                                            .setPhase(VmPhase.VM_PHASE_RUNNING)
                                            .setIntentId("")
                                            .build());
                    try {
                        return term.finish(
                                tx,
                                cur,
                                IntentState.INTENT_STATE_DONE,
                                name + " runs on " + r.getOwner() + " at epoch " + r.getEpoch());
                    } catch (KeeperException.BadVersionException e) {
                        cur = term.store.intent(i.getId()).orElseThrow();
                        i = cur.value();
                        if (!Term.isOpen(i)) {
                            return i; // our own write landed before the conflict: it is over
                        }
                        continue;
                    }
                }
                // That host could not start it: the next attempt goes elsewhere (from the epoch it is at now).
                log.warn("restart {}: {} could not start {}: {}", i.getId(), r.getOwner(), name, failure);
                triedHosts.add(r.getOwner());
                Term.Tx tx = term.tx();
                Versioned<Intent> ni = tx.setIntent(
                        cur,
                        i.toBuilder()
                                .setSource(r.getOwner())
                                .setFromEpoch(r.getEpoch())
                                .setHost("")
                                .setToEpoch(0)
                                .setError(r.getOwner() + " could not start it: " + failure)
                                .build());
                tx.setVm(rec, r.toBuilder().setIntentId("").build());
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
            }
        } finally {
            term.unclaim(name, i.getId());
        }
    }

    /** Asks the record's owner to start the VM at the record's epoch; null on success, else why not. */
    private String startOn(VmRecord r, Intent i) throws InterruptedException {
        String name = r.getSpec().getName();
        long deadline = System.nanoTime() + LOCK_WAIT.toNanos();
        while (true) {
            HostRecord host = term.hostRecord(r.getOwner());
            if (host == null) {
                return r.getOwner() + " is not alive";
            }
            try {
                term.agents.createVm(
                        host,
                        CreateVmRequest.newBuilder()
                                .setSpec(r.getSpec())
                                .setStart(true)
                                .setEpoch(r.getEpoch())
                                .setRequestId(i.getId() + "." + r.getEpoch())
                                .build());
                return null;
            } catch (AgentCallException e) {
                if (e.code() == Status.Code.ALREADY_EXISTS) {
                    try {
                        VmStatus s = term.agents.getVm(host, name);
                        if (s.getEpoch() == r.getEpoch() && s.getState() == VmState.VM_STATE_RUNNING) {
                            return null;
                        }
                    } catch (AgentCallException ignored) {
                        // fall through to the failure
                    }
                    return e.getMessage();
                }
                // The lock of the old owner may linger a moment (a session closing): wait, then give up on this host.
                boolean lockHeld = e.code() == Status.Code.FAILED_PRECONDITION
                        && e.getMessage().contains("run lock");
                if (!lockHeld || System.nanoTime() > deadline) {
                    return e.getMessage();
                }
                term.pause(Duration.ofMillis(250));
            }
        }
    }

    /** VMs to look at again: open RESTART intents waiting for capacity. */
    Collection<String> waitingRestarts() {
        List<String> out = new ArrayList<>();
        for (Versioned<Intent> v : term.view.intents().values()) {
            Intent i = v.value();
            if (i.getKind() == IntentKind.INTENT_KIND_RESTART && i.getState() == IntentState.INTENT_STATE_PENDING) {
                out.add(i.getId());
            }
        }
        return out;
    }
}
