package dev.ferry.cluster.coordinator;

import static dev.ferry.cluster.coordinator.IntentStep.KEEP;
import static dev.ferry.cluster.coordinator.IntentStep.STAY;
import static dev.ferry.cluster.coordinator.IntentStep.act;
import static dev.ferry.cluster.coordinator.IntentStep.advance;
import static dev.ferry.cluster.coordinator.IntentStep.done;
import static dev.ferry.cluster.coordinator.IntentStep.failed;
import static dev.ferry.cluster.coordinator.IntentStep.park;
import static dev.ferry.cluster.coordinator.IntentStep.set;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.coordinator.IntentStep.Fresh;
import dev.ferry.cluster.coordinator.IntentStep.Step;
import dev.ferry.cluster.policy.Placement;
import dev.ferry.cluster.policy.RestartPolicy;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.metrics.CoordinatorMetrics;
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
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Host failure: the host's session ended on the ZooKeeper server ({@code /hosts/<h>} went, and
 * with it the run locks of its VMs). After the failover margin, every VM the host owned that is
 * meant to run and holds no run lock restarts elsewhere, each through a RESTART intent: placed by
 * {@link RestartPolicy} (priority, capacity, anti-affinity), its record moved (owner, epoch + 1,
 * attempts + 1) in the same transaction as the intent, then started cold from its spec by the new
 * owner, which takes the run lock only if the record names it at that epoch.
 *
 * <p>At most {@code max-concurrent-restarts} restarts are in flight at once ({@link RestartSlots},
 * in restart order), and each asks the {@link RestartGate} before it moves the record.
 */
final class Failover implements ClusterView.HostListener {
    private static final Logger log = LoggerFactory.getLogger(Failover.class);
    /** How long a restart waits for a stale run lock to go before it tries another host. */
    private static final Duration LOCK_WAIT = Duration.ofSeconds(30);

    private final IntentStep steps;
    private final Intents intents;
    private final Claims claims;
    private final ClusterView view;
    private final Capacity capacity;
    private final AgentActions orders;
    private final WriteGuard guard;
    private final HostLosses losses;
    private final RestartSlots slots;
    private final RestartGate gate;
    private final Clocks clocks;
    private final Duration margin;
    private final ScheduledExecutorService timers;
    private final ExecutorService workers;
    private final CoordinatorMetrics metrics;

    Failover(
            IntentStep steps,
            Intents intents,
            Claims claims,
            ClusterView view,
            Capacity capacity,
            AgentActions orders,
            WriteGuard guard,
            HostLosses losses,
            RestartSlots slots,
            RestartGate gate,
            Clocks clocks,
            Duration margin,
            ScheduledExecutorService timers,
            ExecutorService workers,
            CoordinatorMetrics metrics) {
        this.steps = steps;
        this.intents = intents;
        this.claims = claims;
        this.view = view;
        this.capacity = capacity;
        this.orders = orders;
        this.guard = guard;
        this.losses = losses;
        this.slots = slots;
        this.gate = gate;
        this.clocks = clocks;
        this.margin = margin;
        this.timers = timers;
        this.workers = workers;
        this.metrics = metrics;
    }

    @Override
    public void hostLost(String host, long session) {
        if (guard.closed()) {
            return;
        }
        HostLosses.Loss loss = losses.lost(host);
        metrics.hostLost();
        log.warn(
                "host {} is gone (session 0x{} ended); restarting its VMs in {} ms",
                host,
                Long.toHexString(session),
                margin.toMillis());
        // The scheduler waits on the monotonic clock.
        timers.schedule(
                () -> workers.execute(() -> {
                    try {
                        restartOrphans(Set.of(host), loss.wallMillis());
                    } catch (NotLeaderException e) {
                        // the next leader does it
                    } catch (Exception e) {
                        log.error("failover of {} failed; the reconciler retries", host, e);
                    }
                }),
                margin.toNanos(),
                TimeUnit.NANOSECONDS);
    }

    @Override
    public void hostJoined(String host, long session) {
        log.info("host {} joined (session 0x{})", host, Long.toHexString(session));
    }

    /**
     * Restarts the VMs of {@code owners} that are meant to run and hold no run lock. Decided in one
     * plan (so capacity is shared fairly and by priority); each carried out by its own intent.
     *
     * @param hostLostAtMs when the host went (wall clock, for the intent's display), 0 if unknown
     */
    synchronized void restartOrphans(Set<String> owners, long hostLostAtMs) throws Exception {
        guard.checkOpen();
        List<RestartPolicy.Candidate> candidates = new ArrayList<>();
        Map<String, Versioned<VmRecord>> records = new HashMap<>();
        for (Versioned<VmRecord> v : view.vms().values()) {
            VmRecord r = v.value();
            String name = r.getSpec().getName();
            if (!owners.contains(r.getOwner())
                    || !orphan(r)
                    || claims.claimedBy(name) != null
                    || intents.running(restartId(name, r.getEpoch())) != null) {
                continue;
            }
            if (view.running(name) != null) {
                continue;
            }
            records.put(name, v);
            candidates.add(candidate(r.getSpec()));
        }
        if (candidates.isEmpty()) {
            return;
        }
        RestartPolicy.Plan plan;
        synchronized (capacity) {
            Set<String> exclude = new HashSet<>(owners);
            plan = RestartPolicy.plan(candidates, capacity.hostsExcept(records.keySet()), exclude);
            plan.placed().forEach(capacity::reserve);
        }
        log.info(
                "restarting {} VM(s) of {}: {}{}",
                plan.placed().size() + plan.waiting().size(),
                owners,
                plan.placed(),
                plan.waiting().isEmpty()
                        ? ""
                        : "; waiting for capacity: " + plan.waiting().keySet());
        List<RestartPolicy.Candidate> ordered = RestartPolicy.order(candidates);
        for (RestartPolicy.Candidate c : ordered) {
            slots.expect(restartId(c.vm(), records.get(c.vm()).value().getEpoch()), c);
        }
        for (RestartPolicy.Candidate c : ordered) {
            VmRecord r = records.get(c.vm()).value();
            String id = restartId(c.vm(), r.getEpoch());
            String target = plan.placed().getOrDefault(c.vm(), "");
            Long lostAt = losses.lostAtMillis(r.getOwner());
            Intent intent = Intents.intent(IntentKind.INTENT_KIND_RESTART, id)
                    .setVm(c.vm())
                    .setSource(r.getOwner())
                    .setFromEpoch(r.getEpoch())
                    .setHost(target)
                    .setHostLostAtMs(hostLostAtMs > 0 ? hostLostAtMs : lostAt == null ? 0L : lostAt)
                    .setError(
                            target.isEmpty()
                                    ? "waiting for capacity: " + plan.waiting().get(c.vm())
                                    : "")
                    .build();
            try {
                IntentRun run = intents.submit(intent);
                run.outcome.whenComplete((end, error) -> slots.forget(id));
                if (run.outcome.isDone()) {
                    capacity.settle(c.vm()); // it had ended already: nothing will use the reservation
                }
            } catch (NotLeaderException e) {
                slots.forget(id);
                throw e;
            } catch (Exception e) {
                log.error("cannot start the restart of {}: {}", c.vm(), e.toString());
                slots.forget(id);
                capacity.settle(c.vm());
            }
        }
    }

    static RestartPolicy.Candidate candidate(VmSpec s) {
        return new RestartPolicy.Candidate(
                s.getName(),
                s.getHa().getRestartPriority(),
                s.getMemoryBytes(),
                Math.max(1, s.getVcpus()),
                s.getHa().getAntiAffinityGroup(),
                s.getMachine(),
                s.getCpuModel());
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
        String name = cur.value().getVm();
        Versioned<VmRecord> known = view.vm(name);
        slots.acquire(
                cur.value().getId(),
                known != null ? candidate(known.value().getSpec()) : new RestartPolicy.Candidate(name, 0, 0, 1, ""));
        try {
            Set<String> triedHosts = new HashSet<>();
            triedHosts.add(cur.value().getSource());
            return steps.claimed(
                    cur,
                    name,
                    // Another intent works on it (a stop, a start): the reconciler looks again later.
                    (c, why) -> c.value(),
                    held -> steps.run(
                                    held,
                                    name,
                                    IntentStep.Read.PLAIN,
                                    IntentStep.UNBOUNDED,
                                    (fresh, i) -> decideRestart(fresh, i, triedHosts))
                            .value());
        } finally {
            // Whichever way the run ended, its placement is in the record now or abandoned.
            capacity.settle(name);
            slots.release();
        }
    }

    private Step decideRestart(Fresh fresh, Intent i, Set<String> triedHosts) throws Exception {
        String name = i.getVm();
        if (!fresh.exists()) {
            return done(i, KEEP, name + " was deleted; nothing to restart");
        }
        VmRecord r = fresh.record();
        boolean decided = r.getIntentId().equals(i.getId())
                && r.getOwner().equals(i.getHost())
                && r.getEpoch() == i.getToEpoch()
                && i.getToEpoch() > 0;
        if (decided) {
            // The record names the target at the new epoch. Start it there.
            return act(() -> startDecided(fresh, i, triedHosts));
        }
        if (r.getDesired() != DesiredState.DESIRED_STATE_RUNNING) {
            return done(i, KEEP, name + " is meant to be stopped now");
        }
        if (r.getEpoch() != i.getFromEpoch() || !r.getOwner().equals(i.getSource())) {
            return done(i, KEEP, name + " already moved to " + r.getOwner() + " at epoch " + r.getEpoch());
        }
        Versioned<RunningRecord> lock = fresh.lock();
        if (lock != null) {
            return done(
                    i,
                    KEEP,
                    name + " runs on " + lock.value().getHostId() + " at epoch "
                            + lock.value().getEpoch() + "; not restarted");
        }
        if (!RestartPolicy.mayRestart(
                r.getRestartAttempts(), r.getSpec().getHa().getMaxRestartAttempts())) {
            int max = RestartPolicy.maxAttempts(r.getSpec().getHa().getMaxRestartAttempts());
            String why = "host " + i.getSource() + " failed; gave up after " + r.getRestartAttempts()
                    + " restart attempt" + (r.getRestartAttempts() == 1 ? "" : "s") + " (max " + max + ")";
            return failed(
                    i,
                    set(
                            fresh.versioned(),
                            r.toBuilder()
                                    .setPhase(VmPhase.VM_PHASE_FAILED)
                                    .setFailureReason(why)
                                    .setIntentId("")
                                    .build()),
                    name + ": " + why);
        }
        if (gate.check(i.getSource(), name, clocks.nanoTime()) instanceof RestartGate.NotBefore held) {
            return waitFor(fresh, i, "restart held: " + held.reason());
        }
        String target = i.getHost();
        if (target.isEmpty() || triedHosts.contains(target) || !view.alive(target) || view.inMaintenance(target)) {
            Placement.Decision d = capacity.placeAndReserve(r.getSpec(), triedHosts);
            if (d instanceof Placement.NoHost n) {
                return waitFor(fresh, i, "waiting for capacity: " + n.reason());
            }
            target = ((Placement.Placed) d).host();
        }
        long epoch = r.getEpoch() + 1;
        String to = target;
        return advance(
                        set(
                                fresh.versioned(),
                                r.toBuilder()
                                        .setOwner(target)
                                        .setEpoch(epoch)
                                        .setRestartAttempts(r.getRestartAttempts() + 1)
                                        .setPhase(VmPhase.VM_PHASE_RESTARTING)
                                        .setFailureReason("")
                                        .setIntentId(i.getId())
                                        .build()),
                        i.toBuilder()
                                .setState(IntentState.INTENT_STATE_RUNNING)
                                .setHost(target)
                                .setToEpoch(epoch)
                                .setError("")
                                .build())
                .releasing(() -> capacity.settle(name))
                .onCommit(() -> log.info(
                        "restart {}: {} at epoch {} -> {} at epoch {} (attempt {})",
                        i.getId(),
                        r.getOwner(),
                        r.getEpoch(),
                        to,
                        epoch,
                        r.getRestartAttempts() + 1));
    }

    /** The restart cannot happen now: the intent waits (PENDING) with the reason, written once. */
    private static Step waitFor(Fresh fresh, Intent i, String why) {
        VmRecord r = fresh.record();
        if (i.getState() == IntentState.INTENT_STATE_PENDING
                && why.equals(i.getError())
                && why.equals(r.getFailureReason())) {
            return STAY; // nothing new; the reconciler tries again
        }
        return park(
                        set(
                                fresh.versioned(),
                                r.toBuilder()
                                        .setPhase(VmPhase.VM_PHASE_RESTARTING)
                                        .setFailureReason(why)
                                        .build()),
                        i.toBuilder()
                                .setState(IntentState.INTENT_STATE_PENDING)
                                .setHost("")
                                .setError(why)
                                .build())
                .onCommit(() -> log.warn("{}: {}", i.getVm(), why));
    }

    /** The decided restart runs on its target; if that host cannot start it, the next attempt goes elsewhere. */
    private Step startDecided(Fresh fresh, Intent i, Set<String> triedHosts) throws InterruptedException {
        VmRecord r = fresh.record();
        String failure = startOn(r, i);
        if (failure == null) {
            return done(
                    i,
                    set(
                            fresh.versioned(),
                            r.toBuilder()
                                    .setPhase(VmPhase.VM_PHASE_RUNNING)
                                    .setIntentId("")
                                    .build()),
                    i.getVm() + " runs on " + r.getOwner() + " at epoch " + r.getEpoch());
        }
        // From the epoch it is at now.
        log.warn("restart {}: {} could not start {}: {}", i.getId(), r.getOwner(), i.getVm(), failure);
        triedHosts.add(r.getOwner());
        return advance(
                set(fresh.versioned(), r.toBuilder().setIntentId("").build()),
                i.toBuilder()
                        .setSource(r.getOwner())
                        .setFromEpoch(r.getEpoch())
                        .setHost("")
                        .setToEpoch(0)
                        .setError(r.getOwner() + " could not start it: " + failure)
                        .build());
    }

    /** Asks the record's owner to start the VM at the record's epoch; null on success, else why not. */
    private String startOn(VmRecord r, Intent i) throws InterruptedException {
        String name = r.getSpec().getName();
        long deadline = clocks.nanoTime() + LOCK_WAIT.toNanos();
        while (true) {
            HostRecord host = view.hostRecord(r.getOwner());
            if (host == null) {
                return r.getOwner() + " is not alive";
            }
            try {
                orders.createVm(
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
                        VmStatus s = orders.getVm(host, name);
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
                if (!lockHeld || clocks.nanoTime() - deadline > 0) {
                    return e.getMessage();
                }
                guard.pause(Duration.ofMillis(250));
            }
        }
    }
}
