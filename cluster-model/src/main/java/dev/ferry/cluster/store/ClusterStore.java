package dev.ferry.cluster.store;

import com.google.protobuf.Message;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.LeaderTerm;
import dev.ferry.proto.cluster.Maintenance;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmRecord;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.BiFunction;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.data.Stat;

/**
 * Typed access to one cluster's records through a namespaced Curator client: reads that return
 * the version a later write must match, and writes that are always version-checked transactions
 * (a create fails if the node exists; a set or delete fails if the node changed since it was
 * read). Errors are ZooKeeper's own {@link KeeperException}s, so callers can tell a conflict
 * (BADVERSION, NONODE, NODEEXISTS: re-read and decide again) from a lost connection (the outcome of
 * a write is then unknown).
 */
public final class ClusterStore {
    private final CuratorFramework zk;
    private final LongAdder writeRequests = new LongAdder();
    private final LongAdder writeOps = new LongAdder();

    public ClusterStore(CuratorFramework zk) {
        this.zk = zk;
    }

    public CuratorFramework client() {
        return zk;
    }

    /** The session the client holds now (0 when it has none). */
    public long sessionId() {
        try {
            return zk.getZookeeperClient().getZooKeeper().getSessionId();
        } catch (Exception e) {
            return 0;
        }
    }

    /** Creates the top-level nodes of the layout if they are missing. */
    public void ensureLayout() throws Exception {
        for (String p : List.of(
                ClusterPaths.HOSTS,
                ClusterPaths.MAINTENANCE,
                ClusterPaths.VMS,
                ClusterPaths.RUNNING,
                ClusterPaths.INTENTS,
                ClusterPaths.REPORTS,
                ClusterPaths.LEADER)) {
            try {
                zk.create().creatingParentsIfNeeded().forPath(p, new byte[0]);
            } catch (KeeperException.NodeExistsException e) {
                // already there
            }
        }
    }

    // ---- reads

    public Optional<Versioned<VmRecord>> vm(String name) throws Exception {
        return read(ClusterPaths.vm(name), Records::vm);
    }

    public Optional<Versioned<HostRecord>> host(String id) throws Exception {
        return read(ClusterPaths.host(id), Records::host);
    }

    public Optional<Versioned<RunningRecord>> running(String vm) throws Exception {
        return read(ClusterPaths.running(vm), Records::running);
    }

    public Optional<Versioned<Intent>> intent(String id) throws Exception {
        return read(ClusterPaths.intent(id), Records::intent);
    }

    public Optional<Versioned<Maintenance>> maintenance(String host) throws Exception {
        return read(ClusterPaths.maintenance(host), Records::maintenance);
    }

    public Optional<Versioned<LeaderTerm>> leaderTerm() throws Exception {
        return read(ClusterPaths.TERM, Records::leaderTerm);
    }

    /** A kept migration report ({@link ClusterPaths#REPORTS}). */
    public Optional<Versioned<dev.ferry.proto.agent.MigrationRecord>> report(ClusterPaths.ReportName name)
            throws Exception {
        return read(ClusterPaths.report(name), Records::report);
    }

    public List<String> children(String path) throws Exception {
        return zk.getChildren().forPath(path);
    }

    <T> Optional<Versioned<T>> read(String path, BiFunction<String, byte[], T> decode) throws Exception {
        Stat stat = new Stat();
        byte[] data;
        try {
            data = zk.getData().storingStatIn(stat).forPath(path);
        } catch (KeeperException.NoNodeException e) {
            return Optional.empty();
        }
        return Optional.of(
                new Versioned<>(path, decode.apply(path, data), stat.getVersion(), stat.getEphemeralOwner()));
    }

    /**
     * The VM record as of now, seen past any lag of this client's server ({@link #sync} then read),
     * in one round trip instead of two: the sync and the read leave back to back on the session's
     * connection, and a server answers one session's requests in order, holding the read until
     * the sync is done. For the switchover's destination, where every round trip is downtime.
     */
    public Optional<Versioned<VmRecord>> vmSynced(String name, Duration timeout) throws Exception {
        String path = ClusterPaths.vm(name);
        org.apache.zookeeper.ZooKeeper raw = zk.getZookeeperClient().getZooKeeper();
        String full = org.apache.curator.utils.ZKPaths.fixForNamespace(zk.getNamespace(), path);
        java.util.concurrent.CompletableFuture<Integer> synced = new java.util.concurrent.CompletableFuture<>();
        raw.sync(full, (rc, p, ctx) -> synced.complete(rc), null);
        Stat stat = new Stat();
        byte[] data;
        try {
            data = raw.getData(full, false, stat);
        } catch (KeeperException.NoNodeException e) {
            data = null;
        }
        int rc = synced.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        if (rc != KeeperException.Code.OK.intValue()) {
            throw KeeperException.create(KeeperException.Code.get(rc), path);
        }
        return data == null
                ? Optional.empty()
                : Optional.of(
                        new Versioned<>(path, Records.vm(path, data), stat.getVersion(), stat.getEphemeralOwner()));
    }

    /**
     * Makes this client's next reads see every write the ensemble committed before now (ZooKeeper
     * serves reads from the server the client talks to, which may lag the leader).
     */
    public void sync(String path, Duration timeout) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        AtomicInteger rc = new AtomicInteger();
        zk.sync()
                .inBackground((client, event) -> {
                    rc.set(event.getResultCode());
                    done.countDown();
                })
                .forPath(path);
        if (!done.await(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
            throw new KeeperException.OperationTimeoutException();
        }
        if (rc.get() != KeeperException.Code.OK.intValue()) {
            throw KeeperException.create(KeeperException.Code.get(rc.get()), path);
        }
    }

    // ---- writes

    public CuratorOp create(String path, Message record, CreateMode mode) throws Exception {
        return zk.transactionOp().create().withMode(mode).forPath(path, Records.encode(record));
    }

    /** A node whose data is already encoded (a migration report, {@link Records#report}). */
    public CuratorOp create(String path, byte[] data, CreateMode mode) throws Exception {
        return zk.transactionOp().create().withMode(mode).forPath(path, data);
    }

    public CuratorOp set(String path, Message record, int version) throws Exception {
        return zk.transactionOp().setData().withVersion(version).forPath(path, Records.encode(record));
    }

    public CuratorOp delete(String path, int version) throws Exception {
        return zk.transactionOp().delete().withVersion(version).forPath(path);
    }

    /** Fails the transaction unless {@code path} exists (version -1) or is at {@code version}. */
    public CuratorOp check(String path, int version) throws Exception {
        return zk.transactionOp().check().withVersion(version).forPath(path);
    }

    /** One atomic, all-or-nothing write. */
    public void commit(List<CuratorOp> ops) throws Exception {
        writeRequests.increment();
        writeOps.add(ops.size());
        zk.transaction().forOperations(ops);
    }

    public void commit(CuratorOp... ops) throws Exception {
        commit(List.of(ops));
    }

    /** Write requests this store sent (one per transaction), for benchmarks. */
    public long writeRequests() {
        return writeRequests.sum();
    }

    /** Operations inside those transactions (checks included). */
    public long writeOps() {
        return writeOps.sum();
    }

    /**
     * Which operation of a failed transaction failed first (its index), or -1 when the failure was
     * not an operation's (a lost connection).
     */
    public static int failedOp(KeeperException e) {
        List<OpResult> results = e.getResults();
        if (results == null) {
            return -1;
        }
        for (int i = 0; i < results.size(); i++) {
            if (results.get(i) instanceof OpResult.ErrorResult err
                    && err.getErr() != KeeperException.Code.OK.intValue()
                    && err.getErr() != KeeperException.Code.RUNTIMEINCONSISTENCY.intValue()) {
                return i;
            }
        }
        return -1;
    }

    /** True when a failed call may or may not have reached the ensemble: its outcome is unknown. */
    public static boolean outcomeUnknown(Throwable e) {
        if (e instanceof KeeperException ke) {
            return switch (ke.code()) {
                case CONNECTIONLOSS, OPERATIONTIMEOUT, SESSIONEXPIRED, SESSIONMOVED, REQUESTTIMEOUT -> true;
                default -> false;
            };
        }
        return !(e instanceof RecordException);
    }
}
