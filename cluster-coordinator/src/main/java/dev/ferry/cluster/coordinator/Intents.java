package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.logs.LogContext;
import dev.ferry.metrics.CoordinatorMetrics;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.cluster.IntentState;
import io.grpc.Status;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The intents of one term: {@link #submit} writes an intent (or finds the one a retried request
 * already wrote) before anything is done, then runs it on a worker with the handler of its kind; a
 * term that starts resumes every open intent the previous leader left. How an intent ends is
 * written by {@link #finish} (or, for steps on a VM record, by {@link IntentStep}).
 */
final class Intents {
    private static final Logger log = LoggerFactory.getLogger(Intents.class);

    /** Carries out one kind of intent; returns the intent as it ended (or was left, still open). */
    interface Handler {
        Intent run(IntentRun run, Versioned<Intent> cur) throws Exception;
    }

    private final ClusterStore store;
    private final WriteGuard guard;
    private final Tx.Factory writes;
    private final ExecutorService workers;
    private final Clocks clocks;
    private final Map<IntentKind, Handler> handlers = new EnumMap<>(IntentKind.class);
    private final Map<String, IntentRun> runs = new ConcurrentHashMap<>();
    private final CoordinatorMetrics metrics;

    Intents(Tx.Factory writes, ExecutorService workers, CoordinatorMetrics metrics) {
        this.metrics = metrics;
        this.writes = writes;
        this.guard = writes.guard();
        this.store = guard.store();
        this.workers = workers;
        this.clocks = writes.clocks();
    }

    /** Registers the handler of {@code kind} (before the term starts). */
    void handle(IntentKind kind, Handler handler) {
        handlers.put(kind, handler);
    }

    static Intent.Builder intent(IntentKind kind, String id) {
        long now = System.currentTimeMillis(); // display only
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

    static String kindName(IntentKind k) {
        return k.name().replace("INTENT_KIND_", "").toLowerCase();
    }

    /** The intent as ZooKeeper has it now. */
    Optional<Versioned<Intent>> read(String id) throws Exception {
        return store.intent(id);
    }

    /**
     * Writes {@code fresh} (PENDING) and runs it; if an intent with its id exists (a retried
     * request, or an intent another part of this leader made), returns that one's run or outcome.
     */
    IntentRun submit(Intent fresh) throws Exception {
        guard.checkOpen();
        IntentRun existing = runs.get(fresh.getId());
        if (existing != null) {
            return existing;
        }
        String path = ClusterPaths.intent(fresh.getId());
        Optional<Versioned<Intent>> stored = store.intent(fresh.getId());
        if (stored.isEmpty()) {
            Intent stamped = fresh.toBuilder().setLeader(guard.leaderId()).build();
            try {
                guard.write(List.of(store.create(path, stamped, CreateMode.PERSISTENT)));
                stored = Optional.of(new Versioned<>(path, stamped, 0, 0));
                metrics.intentCreated(kindName(stamped.getKind()));
            } catch (KeeperException.NodeExistsException e) {
                stored = store.intent(fresh.getId());
            }
        }
        Intent i = stored.orElseThrow().value();
        // An operator retrying with --request-id after a lost reply sends the same request; the
        // same id on another request (a copied command line) must not return the first one's outcome.
        if (i.getKind() != fresh.getKind() || !i.getVm().equals(fresh.getVm())) {
            throw new CoordinatorException(
                    Status.Code.INVALID_ARGUMENT,
                    "request id " + fresh.getId() + " was already used for another request (" + kindName(i.getKind())
                            + (i.getVm().isEmpty() ? "" : " of " + i.getVm()) + ")");
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

    /** The run of intent {@code id} in progress in this term, or null. */
    IntentRun running(String id) {
        return runs.get(id);
    }

    private void execute(IntentRun run, Versioned<Intent> cached) {
        Intent i = cached.value();
        // Every line of the run carries the intent and its VM as fields (--log-format json).
        try (LogContext.Scope fields = LogContext.with(
                LogContext.INTENT, i.getId(), LogContext.KIND, kindName(i.getKind()), LogContext.VM, i.getVm())) {
            executeLogged(run, cached);
        }
    }

    private void executeLogged(IntentRun run, Versioned<Intent> cached) {
        Intent i = cached.value();
        try {
            // The picture may lag: an intent that just ended can still look open in the cache.
            Versioned<Intent> v = store.intent(i.getId()).orElse(null);
            if (v == null || !isOpen(v.value())) {
                run.outcome.complete(v == null ? i : v.value());
                return;
            }
            i = v.value();
            Handler h = handlers.get(i.getKind());
            if (h == null) {
                throw new IllegalStateException("unknown intent kind " + i.getKind());
            }
            Intent end = h.run(run, v);
            counted(i, end);
            run.outcome.complete(end);
        } catch (NotLeaderException e) {
            run.outcome.completeExceptionally(e);
        } catch (InterruptedException e) {
            run.outcome.completeExceptionally(new NotLeaderException(guard.leaderId() + " stopped leading"));
        } catch (Exception | AssertionError e) {
            if (guard.closed()) {
                run.outcome.completeExceptionally(new NotLeaderException(guard.leaderId() + " stopped leading"));
            } else {
                log.error("intent {} ({}) failed unexpectedly", i.getId(), kindName(i.getKind()), e);
                Intent end = failQuietly(i.getId(), "internal error: " + e);
                counted(i, end);
                run.outcome.complete(end);
            }
        } finally {
            runs.remove(run.id, run);
        }
    }

    /** Counts {@code end} if this run ended the intent (a handler may leave it open, waiting). */
    private void counted(Intent started, Intent end) {
        if (!isOpen(end)) {
            metrics.intentFinished(kindName(started.getKind()), end.getState() == IntentState.INTENT_STATE_DONE);
        }
    }

    /** Marks an intent FAILED from a fresh read; the failed intent, or a synthetic one if that write fails. */
    Intent failQuietly(String id, String error) {
        Intent synthetic = Intent.newBuilder()
                .setId(id)
                .setState(IntentState.INTENT_STATE_FAILED)
                .setError(error)
                .build();
        try {
            Optional<Versioned<Intent>> cur = store.intent(id);
            if (cur.isPresent() && isOpen(cur.get().value())) {
                return fail(cur.get(), error);
            }
            return cur.map(Versioned::value).orElse(synthetic);
        } catch (Exception e) {
            return synthetic;
        }
    }

    /** {@code cur} as it ends in {@code state}, with the result or error. */
    Intent ended(Intent cur, IntentState state, String resultOrError) {
        Intent.Builder b = cur.toBuilder().setState(state).setFinishedAtMs(clocks.wallMillis());
        if (state == IntentState.INTENT_STATE_DONE) {
            b.setResult(resultOrError).setError("");
        } else {
            b.setError(resultOrError);
        }
        return b.build();
    }

    /** Ends an intent with {@code state}, writing {@code tx}'s other changes in the same transaction. */
    Intent finish(Tx tx, Versioned<Intent> cur, IntentState state, String resultOrError) throws Exception {
        Versioned<Intent> next = tx.setIntent(cur, ended(cur.value(), state, resultOrError));
        tx.commit();
        logEnd(next.value());
        return next.value();
    }

    Intent fail(Versioned<Intent> cur, String error) throws Exception {
        return finish(writes.tx(), cur, IntentState.INTENT_STATE_FAILED, error);
    }

    static void logEnd(Intent i) {
        boolean done = i.getState() == IntentState.INTENT_STATE_DONE;
        log.info(
                "intent {} ({}{}) {}: {}",
                i.getId(),
                kindName(i.getKind()),
                i.getVm().isEmpty() ? "" : " " + i.getVm(),
                done ? "done" : "failed",
                done ? i.getResult() : i.getError());
    }

    /** The term is over: whoever waits for a run hears so. */
    void closeAll() {
        for (IntentRun r : runs.values()) {
            r.outcome.completeExceptionally(new NotLeaderException(guard.leaderId() + " stopped leading"));
        }
    }
}
