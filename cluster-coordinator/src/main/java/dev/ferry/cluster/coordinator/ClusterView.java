package dev.ferry.cluster.coordinator;

import com.google.protobuf.Message;
import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.RecordException;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.Maintenance;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmRecord;
import java.io.Closeable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.BiConsumer;
import java.util.function.BiFunction;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The leader's picture of the cluster, kept by Curator caches of {@code /hosts},
 * {@code /maintenance}, {@code /vms}, {@code /running} and {@code /intents}, decoded once per
 * change. It is for seeing and deciding what to look at; every write is still version-checked
 * against a fresh read, so a stale picture can delay a decision but never make a wrong write.
 *
 * <p>The leader's own record writes are visible at once ({@link #noteVm}), before the cache hears
 * of them, so that decisions made in a burst (the restarts of a failed host) account for each
 * other's capacity.
 */
final class ClusterView implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(ClusterView.class);

    /** Host events, for failure detection. */
    interface HostListener {
        void hostLost(String host, long session);

        void hostJoined(String host, long session);
    }

    private final ClusterStore store;
    private final List<CuratorCache> caches = new ArrayList<>();
    private volatile HostListener hostListener = new HostListener() {
        @Override
        public void hostLost(String host, long session) {}

        @Override
        public void hostJoined(String host, long session) {}
    };
    private final Map<String, Versioned<HostRecord>> hosts = new ConcurrentHashMap<>();
    private final Map<String, Versioned<Maintenance>> maintenance = new ConcurrentHashMap<>();
    private final Map<String, Versioned<VmRecord>> vms = new ConcurrentHashMap<>();
    private final Map<String, Versioned<VmRecord>> ownWrites = new ConcurrentHashMap<>();
    private final Map<String, Versioned<RunningRecord>> running = new ConcurrentHashMap<>();
    private final Map<String, Versioned<Intent>> intents = new ConcurrentHashMap<>();
    private final CountDownLatch initialized = new CountDownLatch(5);

    ClusterView(ClusterStore store) {
        this.store = store;
        CuratorFramework zk = store.client();
        watch(zk, ClusterPaths.HOSTS, Records::host, hosts, (before, after) -> {
            if (before != null && (after == null || after.ephemeralOwner() != before.ephemeralOwner())) {
                hostListener.hostLost(name(before.path()), before.ephemeralOwner());
            }
            if (after != null && (before == null || after.ephemeralOwner() != before.ephemeralOwner())) {
                hostListener.hostJoined(name(after.path()), after.ephemeralOwner());
            }
        });
        watch(zk, ClusterPaths.MAINTENANCE, Records::maintenance, maintenance, (a, b) -> {});
        watch(zk, ClusterPaths.VMS, Records::vm, vms, (before, after) -> {
            if (after != null) {
                ownWrites.computeIfPresent(
                        name(after.path()), (k, mine) -> mine.version() <= after.version() ? null : mine);
            } else if (before != null) {
                ownWrites.remove(name(before.path()));
            }
        });
        watch(zk, ClusterPaths.RUNNING, Records::running, running, (a, b) -> {});
        watch(zk, ClusterPaths.INTENTS, Records::intent, intents, (a, b) -> {});
    }

    private <T extends Message> void watch(
            CuratorFramework zk,
            String root,
            BiFunction<String, byte[], T> decode,
            Map<String, Versioned<T>> into,
            BiConsumer<Versioned<T>, Versioned<T>> changed) {
        CuratorCache cache = CuratorCache.build(zk, root);
        CuratorCacheListener listener = CuratorCacheListener.builder()
                .forCreatesAndChanges((before, after) -> {
                    if (after.getPath().equals(root) || after.getData() == null) {
                        return;
                    }
                    String name = name(after.getPath());
                    Versioned<T> v;
                    try {
                        v = new Versioned<>(
                                after.getPath(),
                                decode.apply(after.getPath(), after.getData()),
                                after.getStat().getVersion(),
                                after.getStat().getEphemeralOwner());
                    } catch (RecordException e) {
                        log.error("{}; the coordinator leaves it alone", e.getMessage());
                        return;
                    }
                    Versioned<T> old = into.put(name, v);
                    changed.accept(old, v);
                })
                .forDeletes(gone -> {
                    if (gone.getPath().equals(root)) {
                        return;
                    }
                    Versioned<T> old = into.remove(name(gone.getPath()));
                    if (old != null) {
                        changed.accept(old, null);
                    }
                })
                .forInitialized(initialized::countDown)
                .build();
        cache.listenable().addListener(listener);
        caches.add(cache);
    }

    /** Starts the caches; host events go to {@code listener} from then on. */
    void start(HostListener listener) {
        this.hostListener = listener;
        caches.forEach(CuratorCache::start);
    }

    boolean awaitInitialized(Duration timeout) throws InterruptedException {
        return initialized.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    private static String name(String path) {
        return path.substring(path.lastIndexOf('/') + 1);
    }

    // ---- snapshots

    Map<String, Versioned<HostRecord>> hosts() {
        return Map.copyOf(hosts);
    }

    boolean alive(String host) {
        return hosts.containsKey(host);
    }

    Versioned<HostRecord> host(String id) {
        return hosts.get(id);
    }

    /**
     * A live host's registration: from the picture, or, when the picture does not have it yet (a
     * host that joined a moment ago), from ZooKeeper. Null when the host is not alive.
     */
    HostRecord hostRecord(String id) {
        Versioned<HostRecord> h = hosts.get(id);
        if (h != null) {
            return h.value();
        }
        try {
            return store.host(id).map(Versioned::value).orElse(null);
        } catch (Exception e) {
            return null;
        }
    }

    /** Alive by the picture or, for a host that joined a moment ago, by ZooKeeper. */
    boolean registered(String host) {
        return hostRecord(host) != null;
    }

    boolean inMaintenance(String host) {
        return maintenance.containsKey(host);
    }

    Map<String, Versioned<Maintenance>> maintenance() {
        return Map.copyOf(maintenance);
    }

    Versioned<VmRecord> vm(String name) {
        Versioned<VmRecord> cached = vms.get(name);
        Versioned<VmRecord> mine = ownWrites.get(name);
        if (mine == null) {
            return cached;
        }
        if (cached == null || cached.version() < mine.version()) {
            return mine.value() == null ? null : mine;
        }
        return cached;
    }

    /** Every VM record, this leader's latest writes included. */
    Map<String, Versioned<VmRecord>> vms() {
        Map<String, Versioned<VmRecord>> all = new java.util.HashMap<>(vms);
        for (var e : ownWrites.entrySet()) {
            Versioned<VmRecord> cached = all.get(e.getKey());
            if (cached == null || cached.version() < e.getValue().version()) {
                if (e.getValue().value() == null) {
                    all.remove(e.getKey());
                } else {
                    all.put(e.getKey(), e.getValue());
                }
            }
        }
        return all;
    }

    /** This leader wrote {@code record} at {@code version} (null record: deleted). */
    void noteVm(String name, VmRecord record, int version) {
        ownWrites.put(name, new Versioned<>(ClusterPaths.vm(name), record, version, 0));
    }

    Versioned<RunningRecord> running(String vm) {
        return running.get(vm);
    }

    Map<String, Versioned<RunningRecord>> running() {
        return Map.copyOf(running);
    }

    Map<String, Versioned<Intent>> intents() {
        return Map.copyOf(intents);
    }

    @Override
    public void close() {
        caches.forEach(CuratorCache::close);
    }
}
