package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.VmRecord;
import java.util.ArrayList;
import java.util.List;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.zookeeper.CreateMode;

/**
 * A leader transaction under construction: record and intent writes that go together, each
 * version-checked, committed through the term's {@link WriteGuard}. Once committed, the leader's
 * own record writes are noted in its picture at once ({@link ClusterView#noteVm}).
 */
final class Tx {
    /** Makes the transactions of one term. */
    record Factory(WriteGuard guard, ClusterView view, Clocks clocks) {
        Tx tx() {
            return new Tx(guard, view, clocks);
        }
    }

    private final WriteGuard guard;
    private final ClusterView view;
    private final Clocks clocks;
    private final ClusterStore store;
    private final List<CuratorOp> ops = new ArrayList<>();
    private final List<Runnable> after = new ArrayList<>();

    private Tx(WriteGuard guard, ClusterView view, Clocks clocks) {
        this.guard = guard;
        this.view = view;
        this.clocks = clocks;
        this.store = guard.store();
    }

    Tx createVm(String name, VmRecord record) throws Exception {
        VmRecord stamped =
                record.toBuilder().setUpdatedAtMs(clocks.wallMillis()).build();
        ops.add(store.create(ClusterPaths.vm(name), stamped, CreateMode.PERSISTENT));
        after.add(() -> view.noteVm(name, stamped, 0));
        return this;
    }

    Tx setVm(Versioned<VmRecord> current, VmRecord next) throws Exception {
        VmRecord stamped = next.toBuilder().setUpdatedAtMs(clocks.wallMillis()).build();
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
                .setUpdatedAtMs(clocks.wallMillis())
                .setLeader(guard.leaderId())
                .build();
        ops.add(store.set(current.path(), stamped, current.version()));
        return new Versioned<>(current.path(), stamped, current.version() + 1, 0);
    }

    void commit() throws Exception {
        guard.write(ops);
        after.forEach(Runnable::run);
    }
}
