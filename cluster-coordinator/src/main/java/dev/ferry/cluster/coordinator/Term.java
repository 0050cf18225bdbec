package dev.ferry.cluster.coordinator;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.metrics.CoordinatorMetrics;
import dev.ferry.proto.agent.LeaderTermRequest;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import java.io.Closeable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One leadership term: what this replica does from the moment it takes office (its latch made it
 * leader and it allocated a term, {@link WriteGuard}) until it loses the latch (or closes). This
 * class only assembles the term's parts and starts and stops them; each operation gets what it
 * needs (the term's writes, the picture, capacity, the agents with the term on every order) and
 * nothing of the others.
 *
 * <p>Work is driven by intents ({@link Intents}); each step of an intent on a VM record is the
 * {@link IntentStep} recipe. A term that starts resumes every open intent the previous leader
 * left, after telling every live agent its term.
 */
final class Term implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(Term.class);
    /** How long taking office waits for the agents to hear of the term (the rest hear it in the background). */
    private static final Duration ANNOUNCE_WAIT = Duration.ofSeconds(2);

    final CoordinatorConfig config;
    final WriteGuard guard;
    final ClusterStore store;
    final ClusterView view;
    final LeaderOrders orders;
    final ScheduledExecutorService timers;
    final ExecutorService workers;
    final Intents intents;
    final Claims claims;
    final Capacity capacity;
    final HostLosses losses;
    final RestartSlots slots;
    final VmOperations vmOps;
    final Failover failover;
    final Moves moves;
    final MigrationReports reports;
    final Reconciler reconciler;

    Term(
            CoordinatorConfig config,
            WriteGuard guard,
            AgentActions agents,
            RestartGate gate,
            Clocks clocks,
            CoordinatorMetrics metrics) {
        this.config = config;
        this.guard = guard;
        this.store = guard.store();
        this.timers = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().daemon().name("ferry-leader-timer").factory());
        this.workers = Executors.newThreadPerTaskExecutor(
                Thread.ofVirtual().name("ferry-leader-", 0).factory());
        this.view = new ClusterView(store);
        this.orders = new LeaderOrders(agents, guard.term());
        Tx.Factory writes = new Tx.Factory(guard, view, clocks);
        this.intents = new Intents(writes, workers, metrics);
        this.claims = new Claims();
        IntentStep steps = new IntentStep(writes, claims, intents);
        this.capacity = new Capacity(view);
        this.losses = new HostLosses(clocks);
        this.slots = new RestartSlots(config.maxConcurrentRestarts());
        this.vmOps = new VmOperations(steps, view, capacity, orders, guard, gate, clocks);
        this.failover = new Failover(
                steps,
                intents,
                claims,
                view,
                capacity,
                orders,
                guard,
                losses,
                slots,
                gate,
                clocks,
                config.failoverMargin(),
                timers,
                workers,
                metrics);
        this.reports = new MigrationReports(guard, config.reports(), clocks);
        this.moves = new Moves(steps, intents, claims, view, capacity, orders, writes, losses, reports);
        this.reconciler =
                new Reconciler(intents, claims, view, failover, orders, writes, losses, new StableRuns(clocks), config);
        intents.handle(IntentKind.INTENT_KIND_CREATE, vmOps::create);
        intents.handle(IntentKind.INTENT_KIND_START, vmOps::start);
        intents.handle(IntentKind.INTENT_KIND_STOP, vmOps::stop);
        intents.handle(IntentKind.INTENT_KIND_DELETE, vmOps::delete);
        intents.handle(IntentKind.INTENT_KIND_MIGRATE, moves::migrate);
        intents.handle(IntentKind.INTENT_KIND_DRAIN, moves::drain);
        intents.handle(IntentKind.INTENT_KIND_ACTIVATE, moves::activate);
        intents.handle(IntentKind.INTENT_KIND_RESTART, failover::restart);
    }

    /** Loads the picture of the cluster, tells the agents the term, resumes what the last leader left open, starts the loops. */
    void start() throws Exception {
        view.start(failover);
        if (!view.awaitInitialized(Duration.ofSeconds(60))) {
            throw new IllegalStateException("the cluster caches did not load within 60 s");
        }
        announce();
        int open = 0;
        for (Versioned<Intent> i : view.intents().values()) {
            if (Intents.isOpen(i.value())) {
                intents.resume(i);
                open++;
            }
        }
        log.info(
                "{} leads in term {}: {} hosts alive, {} VMs, {} open intents resumed",
                guard.leaderId(),
                guard.term(),
                view.hosts().size(),
                view.vms().size(),
                open);
        long tick = config.reconcileInterval().toMillis();
        timers.scheduleWithFixedDelay(() -> workers.execute(reconciler::tick), tick, tick, TimeUnit.MILLISECONDS);
    }

    /**
     * Tells every live agent this term, so that each refuses a deposed leader's late orders even
     * before this leader orders it anything. Best effort: an agent that does not answer in time
     * hears it in the background, or with this leader's first order.
     */
    private void announce() throws InterruptedException {
        LeaderTermRequest req =
                LeaderTermRequest.newBuilder().setLeader(guard.leaderId()).build();
        List<CompletableFuture<Void>> calls = new ArrayList<>();
        for (Versioned<HostRecord> h : view.hosts().values()) {
            calls.add(CompletableFuture.runAsync(
                    () -> {
                        try {
                            orders.announceLeaderTerm(h.value(), req);
                        } catch (AgentCallException e) {
                            log.info(
                                    "{} did not take leader term {}: {}",
                                    h.value().getHostId(),
                                    guard.term(),
                                    e.getMessage());
                        }
                    },
                    workers));
        }
        try {
            CompletableFuture.allOf(calls.toArray(CompletableFuture[]::new))
                    .get(ANNOUNCE_WAIT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException | java.util.concurrent.ExecutionException e) {
            // the rest go on in the background
        }
    }

    boolean closed() {
        return guard.closed();
    }

    /** A live host's registration (the picture, or ZooKeeper for a host that joined a moment ago). */
    HostRecord hostRecord(String id) {
        return view.hostRecord(id);
    }

    @Override
    public void close() {
        guard.close();
        timers.shutdownNow();
        workers.shutdownNow();
        view.close();
        intents.closeAll();
    }
}
