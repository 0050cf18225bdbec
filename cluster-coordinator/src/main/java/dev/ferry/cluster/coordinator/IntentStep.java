package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmRecord;
import java.time.Duration;
import java.util.Objects;
import org.apache.zookeeper.KeeperException;

/**
 * The one shape of every intent's work on a VM record, as a recipe (in Curator's sense) over one
 * primitive, the version-checked transaction of the term ({@link WriteGuard}):
 *
 * <ol>
 *   <li>the intent claims the VM (one intent per VM at a time);
 *   <li>the record is read fresh (the leader's picture may lag);
 *   <li>a {@link Decide} function says what the record means for the intent: it is over already
 *       or waits ({@link #STAY}), write this ({@link Write}: the record's change and the intent's
 *       next state, in one transaction), refuse with a reason (a write that fails the intent), or
 *       call an agent first ({@link Act}, whose result is one of the others);
 *   <li>the write is committed, version-checked against what was read;
 *   <li>on a conflict (someone wrote the record or the intent meanwhile) the intent is read again
 *       (if it ended meanwhile, that is the outcome) and the record is read and decided again.
 * </ol>
 *
 * <p>A decision looks at the record (its intent id, owner and epoch say which steps already
 * happened), so the same decision serves a first run and a new leader resuming the intent halfway.
 * Decide functions neither write nor call agents: they read the record and the picture and may
 * hold a placement for the write (released by {@link Write#release} whatever the write's outcome);
 * the writes are this recipe's, the agent calls are {@link Act}s.
 */
final class IntentStep {
    /** Conflicts a step tolerates before it gives up ("the record kept changing"). */
    static final int CONFLICTS = 10;
    /** For intents that must not give up on conflicts (restarts: their id is reused by every trigger). */
    static final int UNBOUNDED = Integer.MAX_VALUE;

    private static final Duration SYNC_TIMEOUT = Duration.ofSeconds(10);

    /** How the record is read. */
    enum Read {
        /** From the server the client talks to. */
        PLAIN,
        /** After a sync: every write the ensemble committed before now is seen (another session's commit). */
        SYNCED
    }

    /** What a write does with the intent's run afterwards. */
    enum Then {
        /** Read the record again and decide the next step. */
        DECIDE_AGAIN,
        /** The run ends with the intent still open (PENDING: a later pass takes it up again). */
        LEAVE_OPEN,
        /** The intent ended (DONE or FAILED). */
        END
    }

    /** The VM record as read for one decision, and its run lock when the decision asks for it. */
    static final class Fresh {
        private final ClusterStore store;
        private final String vm;
        private final Versioned<VmRecord> record;
        private Versioned<RunningRecord> lock;
        private boolean lockRead;

        Fresh(ClusterStore store, String vm, Versioned<VmRecord> record) {
            this.store = store;
            this.vm = vm;
            this.record = record;
        }

        boolean exists() {
            return record != null;
        }

        /** The record with its version (null when there is none). */
        Versioned<VmRecord> versioned() {
            return record;
        }

        VmRecord record() {
            return record == null ? null : record.value();
        }

        /** The VM's run lock, read fresh once per decision (null when nobody holds it). */
        Versioned<RunningRecord> lock() throws Exception {
            if (!lockRead) {
                lock = store.running(vm).orElse(null);
                lockRead = true;
            }
            return lock;
        }
    }

    /** From the fresh record to the next step. Neither writes nor calls agents. */
    interface Decide {
        Step decide(Fresh fresh, Intent intent) throws Exception;
    }

    /** Agent calls, then the step their result leads to. */
    interface Action {
        Step run() throws Exception;
    }

    /** The work done while an intent holds its VM. */
    interface Claimed {
        Intent run(Versioned<Intent> cur) throws Exception;
    }

    /** What to answer when the VM is claimed by another intent. */
    interface Busy {
        Intent run(Versioned<Intent> cur, String why) throws Exception;
    }

    sealed interface Step permits Stay, Write, Act {}

    /** Nothing to write: the run ends with the intent as it is (its work is done already, or it waits). */
    record Stay() implements Step {}

    /** Call agents first; the action's result is the step. */
    record Act(Action action) implements Step {}

    /**
     * One transaction: {@code vm} and the intent's next state {@code next}; then {@code then}.
     * {@code release} runs after the attempt whatever its outcome (a placement held for it is
     * written or abandoned); {@code committed} only once it committed.
     */
    record Write(VmChange vm, Intent next, Then then, Runnable release, Runnable committed) implements Step {
        Write {
            Objects.requireNonNull(vm, "vm");
            Objects.requireNonNull(next, "next");
        }

        Write releasing(Runnable r) {
            return new Write(vm, next, then, r, committed);
        }

        Write onCommit(Runnable r) {
            return new Write(vm, next, then, release, r);
        }
    }

    /** What a write does to the VM record. */
    sealed interface VmChange permits Keep, Create, Set, Delete {}

    record Keep() implements VmChange {}

    record Create(String name, VmRecord record) implements VmChange {}

    record Set(Versioned<VmRecord> current, VmRecord next) implements VmChange {}

    record Delete(Versioned<VmRecord> current) implements VmChange {}

    static final VmChange KEEP = new Keep();

    static VmChange set(Versioned<VmRecord> current, VmRecord next) {
        return new Set(current, next);
    }

    static VmChange create(String name, VmRecord record) {
        return new Create(name, record);
    }

    static VmChange delete(Versioned<VmRecord> current) {
        return new Delete(current);
    }

    static final Step STAY = new Stay();

    static Step act(Action action) {
        return new Act(action);
    }

    /** Write, then decide again: the intent moves on (its next state RUNNING). */
    static Write advance(VmChange vm, Intent next) {
        return new Write(vm, next, Then.DECIDE_AGAIN, null, null);
    }

    /** Write, and leave the intent open for a later pass. */
    static Write park(VmChange vm, Intent next) {
        return new Write(vm, next, Then.LEAVE_OPEN, null, null);
    }

    /** Write, and the intent is DONE with {@code result}. */
    static Write done(Intent i, VmChange vm, String result) {
        return end(i, vm, IntentState.INTENT_STATE_DONE, result);
    }

    /** Write, and the intent FAILED with {@code error}. */
    static Write failed(Intent i, VmChange vm, String error) {
        return end(i, vm, IntentState.INTENT_STATE_FAILED, error);
    }

    /** The intent FAILED with {@code why}; the record stays as it is. */
    static Write refuse(Intent i, String why) {
        return failed(i, KEEP, why);
    }

    private static Write end(Intent i, VmChange vm, IntentState state, String text) {
        Intent.Builder b = i.toBuilder().setState(state);
        if (state == IntentState.INTENT_STATE_DONE) {
            b.setResult(text).setError("");
        } else {
            b.setError(text);
        }
        return new Write(vm, b.build(), Then.END, null, null);
    }

    private final Tx.Factory writes;
    private final Claims claims;
    private final Intents intents;
    private final ClusterStore store;

    IntentStep(Tx.Factory writes, Claims claims, Intents intents) {
        this.writes = writes;
        this.claims = claims;
        this.intents = intents;
        this.store = writes.guard().store();
    }

    /** Claims {@code vm} for the intent, runs {@code decide} until the intent ends or waits, unclaims. */
    Intent claimed(Versioned<Intent> cur, String vm, Decide decide) throws Exception {
        return claimed(
                cur, vm, held -> run(held, vm, Read.PLAIN, CONFLICTS, decide).value());
    }

    /** Claims {@code vm} for the intent for the length of {@code work}; a busy VM fails the intent. */
    Intent claimed(Versioned<Intent> cur, String vm, Claimed work) throws Exception {
        return claimed(cur, vm, (c, why) -> intents.fail(c, why), work);
    }

    /** Claims {@code vm} for the intent for the length of {@code work}; {@code busy} answers a busy VM. */
    Intent claimed(Versioned<Intent> cur, String vm, Busy busy, Claimed work) throws Exception {
        String id = cur.value().getId();
        if (!claims.claim(vm, id)) {
            return busy.run(cur, claims.busy(vm));
        }
        try {
            return work.run(cur);
        } finally {
            claims.unclaim(vm, id);
        }
    }

    /**
     * Reads, decides and writes until the intent ends or is left open; the intent as it is then.
     * After {@code maxConflicts} conflicts the intent fails ("kept changing").
     */
    Versioned<Intent> run(Versioned<Intent> cur, String vm, Read read, int maxConflicts, Decide decide)
            throws Exception {
        int conflicts = 0;
        while (true) {
            writes.guard().checkOpen();
            Step step = decide.decide(fresh(vm, read), cur.value());
            while (step instanceof Act a) {
                step = a.action().run();
            }
            if (step instanceof Stay) {
                return cur;
            }
            Write w = (Write) step;
            Versioned<Intent> next;
            try {
                Tx tx = writes.tx();
                apply(tx, w.vm());
                Intent intent =
                        w.then() == Then.END ? intents.ended(w.next(), w.next().getState(), text(w.next())) : w.next();
                next = tx.setIntent(cur, intent);
                tx.commit();
            } catch (KeeperException e) {
                if (!conflict(e)) {
                    throw e;
                }
                cur = intents.read(cur.value().getId()).orElseThrow();
                if (!Intents.isOpen(cur.value())) {
                    return cur; // our own write landed before the conflict: it is over
                }
                if (++conflicts >= maxConflicts) {
                    Intent failed = intents.fail(cur, "the record of " + vm + " kept changing; try again");
                    return new Versioned<>(cur.path(), failed, cur.version() + 1, 0);
                }
                continue;
            } finally {
                if (w.release() != null) {
                    w.release().run();
                }
            }
            if (w.committed() != null) {
                w.committed().run();
            }
            switch (w.then()) {
                case END -> {
                    Intents.logEnd(next.value());
                    return next;
                }
                case LEAVE_OPEN -> {
                    return next;
                }
                case DECIDE_AGAIN -> cur = next;
            }
        }
    }

    private Fresh fresh(String vm, Read read) throws Exception {
        if (read == Read.SYNCED) {
            store.sync(ClusterPaths.vm(vm), SYNC_TIMEOUT);
        }
        return new Fresh(store, vm, store.vm(vm).orElse(null));
    }

    private static void apply(Tx tx, VmChange change) throws Exception {
        switch (change) {
            case Keep k -> {}
            case Create c -> tx.createVm(c.name(), c.record());
            case Set s -> tx.setVm(s.current(), s.next());
            case Delete d -> tx.deleteVm(d.current());
        }
    }

    private static String text(Intent i) {
        return i.getState() == IntentState.INTENT_STATE_DONE ? i.getResult() : i.getError();
    }

    /** The record or intent changed since it was read (or appeared, or went): read again and decide again. */
    private static boolean conflict(KeeperException e) {
        return e.code() == KeeperException.Code.BADVERSION
                || e.code() == KeeperException.Code.NODEEXISTS
                || e.code() == KeeperException.Code.NONODE;
    }
}
