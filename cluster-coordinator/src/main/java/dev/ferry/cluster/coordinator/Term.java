package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.VmRecord;
import io.grpc.Status;
import java.io.Closeable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One leadership term: what this replica does from the moment its latch makes it leader until it
 * loses the latch (or closes). Everything it writes goes through {@link #write}, which makes each
 * write one ZooKeeper transaction that also checks this replica's latch node still exists: a
 * replica that has lost its session or been deposed cannot write, even with a stale view. The
 * writes themselves are version-checked.
 *
 * <p>Work is driven by intents: {@link #submit} writes the intent (or finds the one a retried
 * request already wrote) before anything is done, then runs it on a worker; a term that starts
 * resumes every open intent the previous leader left. Each VM is worked on by one intent at a
 * time ({@link #claim}).
 */
final class Term implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(Term.class);

    final CoordinatorConfig config;
    final String leaderId;
    final ClusterStore store;
    final ClusterView view;
    final AgentActions agents;
    private final String latchPath;
    final ScheduledExecutorService timers;
    final ExecutorService workers;
    private final Map<String, IntentRun> runs = new ConcurrentHashMap<>();
    private final Map<String, String> busy = new ConcurrentHashMap<>();
    final long startedNanos = System.nanoTime();
    private volatile boolean closed;
    final Capacity capacity;
    final VmOperations vmOps;
    final Failover failover;
    final Moves moves;
    final Reconciler reconciler;

    Term(CoordinatorConfig config, String leaderId, ClusterStore store, AgentActions agents, String latchPath) {
        this.config = config;
        this.leaderId = leaderId;
        this.store = store;
        this.agents = agents;
        this.latchPath = latchPath;
        this.timers = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().daemon().name("ferry-leader-timer").factory());
        this.workers = Executors.newThreadPerTaskExecutor(
                Thread.ofVirtual().name("ferry-leader-", 0).factory());
        this.capacity = new Capacity(this);
        this.failover = new Failover(this);
        this.view = new ClusterView(store.client(), failover);
        this.vmOps = new VmOperations(this);
        this.moves = new Moves(this);
        this.reconciler = new Reconciler(this);
    }

    /** Loads the picture of the cluster, resumes what the last leader left open, starts the loops. */
    void start() throws Exception {
        view.start();
        if (!view.awaitInitialized(Duration.ofSeconds(60))) {
            throw new IllegalStateException("the cluster caches did not load within 60 s");
        }
        int open = 0;
        for (Versioned<Intent> i : view.intents().values()) {
            if (isOpen(i.value())) {
                resume(i);
                open++;
            }
        }
        log.info(
                "{} leads: {} hosts alive, {} VMs, {} open intents resumed",
                leaderId,
                view.hosts().size(),
                view.vms().size(),
                open);
        long tick = config.reconcileInterval().toMillis();
        timers.scheduleWithFixedDelay(() -> workers.execute(reconciler::tick), tick, tick, TimeUnit.MILLISECONDS);
    }

    boolean closed() {
        return closed;
    }

    void checkOpen() {
        if (closed) {
            throw new NotLeaderException(leaderId + " no longer leads");
        }
    }

    /** How long this replica has led. */
    Duration age() {
        return Duration.ofNanos(System.nanoTime() - startedNanos);
    }

    // ---- writes

    /**
     * One transaction: this replica's latch node must exist (else {@link NotLeaderException}),
     * then {@code ops}, all or nothing.
     */
    void write(List<CuratorOp> ops) throws Exception {
        checkOpen();
        List<CuratorOp> all = new ArrayList<>(ops.size() + 1);
        all.add(store.check(latchPath, -1));
        all.addAll(ops);
        try {
            store.commit(all);
        } catch (KeeperException e) {
            if (ClusterStore.failedOp(e) == 0) {
                closed = true;
                throw new NotLeaderException(leaderId + " lost its leadership (its latch node is gone)");
            }
            throw e;
        }
    }

    /** A transaction under construction: record and intent writes that go together. */
    Tx tx() {
        return new Tx();
    }

    final class Tx {
        private final List<CuratorOp> ops = new ArrayList<>();
        private final List<Runnable> after = new ArrayList<>();

        Tx createVm(String name, VmRecord record) throws Exception {
            ops.add(store.create(ClusterPaths.vm(name), record, CreateMode.PERSISTENT));
            after.add(() -> view.noteVm(name, record, 0));
            return this;
        }

        Tx setVm(Versioned<VmRecord> current, VmRecord next) throws Exception {
            VmRecord stamped =
                    next.toBuilder().setUpdatedAtMs(System.currentTimeMillis()).build();
            String name = stamped.getSpec().getName();
            ops.add(store.set(current.path(), stamped, current.version()));
            after.add(() -> view.noteVm(name, stamped, current.version() + 1));
            return this;
        }

        Tx deleteVm(Versioned<VmRecord> current) throws Exception {
            ops.add(store.delete(current.path(), current.version()));
            String name = current.value().getSpec().getName();
            after.add(() -> view.noteVm(name, null, current.version() + 1));
            return this;
        }

        Tx op(CuratorOp op) {
            ops.add(op);
            return this;
        }

        /** Sets the intent; returns what it will be once committed. */
        Versioned<Intent> setIntent(Versioned<Intent> current, Intent next) throws Exception {
            Intent stamped = next.toBuilder()
                    .setUpdatedAtMs(System.currentTimeMillis())
                    .setLeader(leaderId)
                    .build();
            ops.add(store.set(current.path(), stamped, current.version()));
            return new Versioned<>(current.path(), stamped, current.version() + 1, 0);
        }

        void commit() throws Exception {
            write(ops);
            after.forEach(Runnable::run);
        }
    }

    // ---- intents

    static Intent.Builder intent(IntentKind kind, String id) {
        long now = System.currentTimeMillis();
        return Intent.newBuilder()
                .setSchemaVersion(Records.SCHEMA_VERSION)
                .setId(ClusterPaths.checkIntentId(id))
                .setKind(kind)
                .setState(IntentState.INTENT_STATE_PENDING)
                .setCreatedAtMs(now)
                .setUpdatedAtMs(now);
    }

    static boolean isOpen(Intent i) {
        return i.getState() == IntentState.INTENT_STATE_PENDING || i.getState() == IntentState.INTENT_STATE_RUNNING;
    }

    /**
     * Writes {@code fresh} (PENDING) and runs it; if an intent with its id exists (a retried
     * request, or an intent another part of this leader made), returns that one's run or outcome.
     */
    IntentRun submit(Intent fresh) throws Exception {
        checkOpen();
        IntentRun existing = runs.get(fresh.getId());
        if (existing != null) {
            return existing;
        }
        String path = ClusterPaths.intent(fresh.getId());
        Optional<Versioned<Intent>> stored = store.intent(fresh.getId());
        if (stored.isEmpty()) {
            Intent stamped = fresh.toBuilder().setLeader(leaderId).build();
            try {
                write(List.of(store.create(path, stamped, CreateMode.PERSISTENT)));
                stored = Optional.of(new Versioned<>(path, stamped, 0, 0));
            } catch (KeeperException.NodeExistsException e) {
                stored = store.intent(fresh.getId());
            }
        }
        Intent i = stored.orElseThrow().value();
        if (i.getKind() != fresh.getKind()) {
            throw new CoordinatorException(
                    Status.Code.INVALID_ARGUMENT,
                    "request id " + fresh.getId() + " was already used for another request (" + kindName(i.getKind())
                            + ")");
        }
        if (!isOpen(i)) {
            return IntentRun.finished(i);
        }
        return resume(stored.get());
    }

    /** The run of an open intent: the one in progress, or a new one. */
    IntentRun resume(Versioned<Intent> v) {
        return runs.computeIfAbsent(v.value().getId(), id -> {
            IntentRun run = new IntentRun(id);
            workers.execute(() -> execute(run, v));
            return run;
        });
    }

    IntentRun running(String id) {
        return runs.get(id);
    }

    private void execute(IntentRun run, Versioned<Intent> cached) {
        Intent i = cached.value();
        try {
            // The picture may lag: an intent that just ended can still look open in the cache.
            Versioned<Intent> v = store.intent(i.getId()).orElse(null);
            if (v == null || !isOpen(v.value())) {
                run.outcome.complete(v == null ? i : v.value());
                return;
            }
            i = v.value();
            Intent end = switch (i.getKind()) {
                case INTENT_KIND_CREATE -> vmOps.create(run, v);
                case INTENT_KIND_START -> vmOps.start(run, v);
                case INTENT_KIND_STOP -> vmOps.stop(run, v);
                case INTENT_KIND_DELETE -> vmOps.delete(run, v);
                case INTENT_KIND_MIGRATE -> moves.migrate(run, v);
                case INTENT_KIND_DRAIN -> moves.drain(run, v);
                case INTENT_KIND_ACTIVATE -> moves.activate(run, v);
                case INTENT_KIND_RESTART -> failover.restart(run, v);
                default -> throw new IllegalStateException("unknown intent kind " + i.getKind());
            };
            run.outcome.complete(end);
        } catch (NotLeaderException e) {
            run.outcome.completeExceptionally(e);
        } catch (InterruptedException e) {
            run.outcome.completeExceptionally(new NotLeaderException(leaderId + " stopped leading"));
        } catch (Exception | AssertionError e) {
            if (closed) {
                run.outcome.completeExceptionally(new NotLeaderException(leaderId + " stopped leading"));
            } else {
                log.error("intent {} ({}) failed unexpectedly", i.getId(), kindName(i.getKind()), e);
                run.outcome.complete(failQuietly(i.getId(), "internal error: " + e));
            }
        } finally {
            runs.remove(run.id, run);
        }
    }

    /** Marks an intent FAILED from a fresh read; the failed intent, or a synthetic one if that write fails. */
    Intent failQuietly(String id, String error) {
        try {
            Optional<Versioned<Intent>> cur = store.intent(id);
            if (cur.isPresent() && isOpen(cur.get().value())) {
                Tx tx = tx();
                Versioned<Intent> next = tx.setIntent(
                        cur.get(),
                        cur.get().value().toBuilder()
                                .setState(IntentState.INTENT_STATE_FAILED)
                                .setError(error)
                                .setFinishedAtMs(System.currentTimeMillis())
                                .build());
                tx.commit();
                return next.value();
            }
            return cur.map(Versioned::value)
                    .orElse(Intent.newBuilder()
                            .setId(id)
                            .setState(IntentState.INTENT_STATE_FAILED)
                            .setError(error)
                            .build());
        } catch (Exception e) {
            return Intent.newBuilder()
                    .setId(id)
                    .setState(IntentState.INTENT_STATE_FAILED)
                    .setError(error)
                    .build();
        }
    }

    /** Ends an intent with {@code state}, writing {@code tx}'s other changes in the same transaction. */
    Intent finish(Tx tx, Versioned<Intent> cur, IntentState state, String resultOrError) throws Exception {
        Intent.Builder b = cur.value().toBuilder().setState(state).setFinishedAtMs(System.currentTimeMillis());
        if (state == IntentState.INTENT_STATE_DONE) {
            b.setResult(resultOrError).setError("");
        } else {
            b.setError(resultOrError);
        }
        Versioned<Intent> next = tx.setIntent(cur, b.build());
        tx.commit();
        log.info(
                "intent {} ({}{}) {}: {}",
                cur.value().getId(),
                kindName(cur.value().getKind()),
                cur.value().getVm().isEmpty() ? "" : " " + cur.value().getVm(),
                state == IntentState.INTENT_STATE_DONE ? "done" : "failed",
                resultOrError);
        return next.value();
    }

    Intent fail(Versioned<Intent> cur, String error) throws Exception {
        return finish(tx(), cur, IntentState.INTENT_STATE_FAILED, error);
    }

    static String kindName(IntentKind k) {
        return k.name().replace("INTENT_KIND_", "").toLowerCase();
    }

    // ---- one intent per VM at a time

    /** Claims {@code vm} for intent {@code id}; false if another intent has it. */
    boolean claim(String vm, String id) {
        String holder = busy.putIfAbsent(vm, id);
        return holder == null || holder.equals(id);
    }

    void unclaim(String vm, String id) {
        busy.remove(vm, id);
    }

    String claimedBy(String vm) {
        return busy.get(vm);
    }

    // ---- reads

    Versioned<VmRecord> freshVm(String name) throws Exception {
        return store.vm(name).orElse(null);
    }

    /**
     * A live host's registration: from the picture, or, when the picture does not have it yet (a
     * host that joined a moment ago), from ZooKeeper.
     */
    HostRecord hostRecord(String id) {
        Versioned<HostRecord> h = view.host(id);
        if (h != null) {
            return h.value();
        }
        try {
            return store.host(id).map(Versioned::value).orElse(null);
        } catch (Exception e) {
            return null;
        }
    }

    boolean alive(String host) {
        return hostRecord(host) != null;
    }

    /** Sleeps, unless the term ends meanwhile. */
    void pause(Duration d) throws InterruptedException {
        checkOpen();
        Thread.sleep(d.toMillis());
        checkOpen();
    }

    @Override
    public void close() {
        closed = true;
        timers.shutdownNow();
        workers.shutdownNow();
        view.close();
        for (IntentRun r : runs.values()) {
            r.outcome.completeExceptionally(new NotLeaderException(leaderId + " stopped leading"));
        }
    }
}
