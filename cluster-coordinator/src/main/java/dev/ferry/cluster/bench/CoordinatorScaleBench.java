package dev.ferry.cluster.bench;

import dev.ferry.cluster.coordinator.Coordinator;
import dev.ferry.cluster.coordinator.CoordinatorConfig;
import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.EmbeddedZooKeeper;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.proto.cluster.DesiredState;
import dev.ferry.proto.cluster.VmPhase;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.rpc.Endpoint;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.zookeeper.CreateMode;

/**
 * How the coordinator copes with a big cluster: {@code hosts} simulated agents (each its own
 * ZooKeeper session) and {@code vms} VMs on a real ZooKeeper server in this process, and a real
 * coordinator leading them. Measures how long the leader takes to load its picture, and, for
 * hosts killed one at a time (their sessions closed, so ZooKeeper deletes their nodes at once),
 * the time from the host's loss to every restart decision written (each VM's record names a new
 * owner at epoch + 1) and to every VM holding its run lock again, and the ZooKeeper writes the
 * coordinator spent on it. The failover margin is 0 here: what is measured is the coordinator's
 * own work, the margin is a setting added on top.
 */
public final class CoordinatorScaleBench {
    // One fixed seed: every run fails the same hosts in the same order.
    private static final ThreadLocal<Random> SEEDED = ThreadLocal.withInitial(() -> new Random(42));

    /** What to simulate. */
    public record Settings(int hosts, int vms, int failures, int sessionTimeoutMs) {
        public Settings {
            if (hosts < 2 || vms < 1 || failures < 1 || failures >= hosts) {
                throw new IllegalArgumentException("need at least 2 hosts, 1 VM, and fewer failures than hosts");
            }
        }
    }

    /** One host's failure, measured. */
    public record Failover(String host, int vms, long decisionsMs, long runningMs, long writeRequests, long writeOps) {}

    /** Everything measured. */
    public record Report(Settings settings, long seedMs, long leaderReadyMs, List<Failover> failovers) {
        public Map<String, Object> toJson() {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("hosts", settings.hosts());
            out.put("vms", settings.vms());
            out.put("seedMs", seedMs);
            out.put("leaderReadyMs", leaderReadyMs);
            List<Map<String, Object>> f = new ArrayList<>();
            for (Failover x : failovers) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("host", x.host());
                m.put("vms", x.vms());
                m.put("decisionsMs", x.decisionsMs());
                m.put("runningMs", x.runningMs());
                m.put("zkWriteRequests", x.writeRequests());
                m.put("zkWriteOps", x.writeOps());
                f.add(m);
            }
            out.put("failovers", f);
            out.put(
                    "decisionsMsMedian",
                    median(failovers.stream().mapToLong(Failover::decisionsMs).toArray()));
            out.put(
                    "decisionsMsMax",
                    failovers.stream().mapToLong(Failover::decisionsMs).max().orElse(0));
            out.put(
                    "runningMsMedian",
                    median(failovers.stream().mapToLong(Failover::runningMs).toArray()));
            out.put(
                    "runningMsMax",
                    failovers.stream().mapToLong(Failover::runningMs).max().orElse(0));
            return out;
        }

        public String table() {
            StringBuilder b = new StringBuilder();
            b.append(String.format(
                    Locale.ROOT,
                    "Coordinator scale: %d simulated hosts (one ZooKeeper session each), %d VMs%n",
                    settings.hosts(),
                    settings.vms()));
            b.append(String.format(
                    Locale.ROOT,
                    "  seeding records and run locks: %d ms; leader ready (caches loaded): %d ms%n",
                    seedMs,
                    leaderReadyMs));
            b.append(String.format(
                    Locale.ROOT,
                    "  %-10s %5s %14s %14s %10s %8s%n",
                    "host lost",
                    "VMs",
                    "decisions (ms)",
                    "running (ms)",
                    "ZK writes",
                    "ZK ops"));
            for (Failover f : failovers) {
                b.append(String.format(
                        Locale.ROOT,
                        "  %-10s %5d %14d %14d %10d %8d%n",
                        f.host(),
                        f.vms(),
                        f.decisionsMs(),
                        f.runningMs(),
                        f.writeRequests(),
                        f.writeOps()));
            }
            b.append(String.format(
                    Locale.ROOT,
                    "  median: decisions %d ms, running %d ms; max: %d ms, %d ms%n",
                    median(failovers.stream().mapToLong(Failover::decisionsMs).toArray()),
                    median(failovers.stream().mapToLong(Failover::runningMs).toArray()),
                    failovers.stream().mapToLong(Failover::decisionsMs).max().orElse(0),
                    failovers.stream().mapToLong(Failover::runningMs).max().orElse(0)));
            return b.toString();
        }
    }

    static long median(long[] xs) {
        if (xs.length == 0) {
            return 0;
        }
        long[] s = xs.clone();
        java.util.Arrays.sort(s);
        return s[s.length / 2];
    }

    private final Settings settings;
    private final PrintStream say;

    public CoordinatorScaleBench(Settings settings, PrintStream say) {
        this.settings = settings;
        this.say = say;
    }

    public Report run() throws Exception {
        Path dir = Files.createTempDirectory("ferry-bench-coordinator-");
        String cluster = "bench";
        try (EmbeddedZooKeeper zk =
                new EmbeddedZooKeeper(dir.resolve("zk"), new InetSocketAddress("127.0.0.1", 0)).start()) {
            ZkClients clients = ZkClients.of(zk.connectString(), cluster, Duration.ofSeconds(30));
            long seedStart = System.nanoTime();
            List<String> hostIds = new ArrayList<>();
            Map<String, List<String>> placement = new LinkedHashMap<>();
            for (int h = 0; h < settings.hosts(); h++) {
                String id = String.format(Locale.ROOT, "h%04d", h);
                hostIds.add(id);
                placement.put(id, new ArrayList<>());
            }
            try (CuratorFramework seed = clients.singleAttempt()) {
                seed.start();
                seed.blockUntilConnected();
                ClusterStore store = new ClusterStore(seed);
                store.ensureLayout();
                say.printf("seeding %d VM records on %d hosts%n", settings.vms(), settings.hosts());
                List<CuratorOp> batch = new ArrayList<>();
                for (int v = 0; v < settings.vms(); v++) {
                    String name = String.format(Locale.ROOT, "vm%05d", v);
                    String owner = hostIds.get(v % hostIds.size());
                    placement.get(owner).add(name);
                    VmRecord r = VmRecord.newBuilder()
                            .setSchemaVersion(Records.SCHEMA_VERSION)
                            .setSpec(VmSpec.newBuilder()
                                    .setSchemaVersion(1)
                                    .setName(name)
                                    .setMemoryBytes(1L << 30)
                                    .setVcpus(1))
                            .setDesired(DesiredState.DESIRED_STATE_RUNNING)
                            .setOwner(owner)
                            .setEpoch(1)
                            .setPhase(VmPhase.VM_PHASE_RUNNING)
                            .build();
                    batch.add(store.create(ClusterPaths.vm(name), r, CreateMode.PERSISTENT));
                    if (batch.size() == 200) {
                        store.commit(batch);
                        batch = new ArrayList<>();
                    }
                }
                if (!batch.isEmpty()) {
                    store.commit(batch);
                }
            }
            String rooted = zk.connectString() + "/" + ClusterPaths.namespace(cluster);
            SimulatedAgents agents = new SimulatedAgents(rooted, settings.sessionTimeoutMs());
            say.printf(
                    "connecting %d simulated agents (one ZooKeeper session each) and taking their run locks%n",
                    settings.hosts());
            long hostMemory = 64L << 30;
            try (ExecutorService pool = Executors.newFixedThreadPool(8)) {
                List<Future<?>> joins = new ArrayList<>();
                for (String id : hostIds) {
                    joins.add(pool.submit(() -> {
                        agents.join(id, hostMemory, 64);
                        agents.holdRunning(id, placement.get(id), 1);
                        return null;
                    }));
                }
                for (Future<?> f : joins) {
                    f.get();
                }
            }
            long seedMs = (System.nanoTime() - seedStart) / 1_000_000;

            CoordinatorConfig config = CoordinatorConfig.of(
                            clients.withSessionTimeout(Duration.ofSeconds(30)),
                            Endpoint.parse("127.0.0.1:0"),
                            Duration.ZERO)
                    .withReconcileInterval(Duration.ofSeconds(5))
                    // The bench measures the coordinator's own work: a failed host's VMs go at once
                    // (the default limit paces restarts on purpose, four at a time).
                    .withMaxConcurrentRestarts(
                            Math.max(1, (settings.vms() + settings.hosts() - 1) / Math.max(1, settings.hosts())));
            long leaderStart = System.nanoTime();
            try (Coordinator coordinator = new Coordinator(config, agents).start();
                    CuratorFramework watcher = clients.singleAttempt()) {
                if (!coordinator.awaitLeadership(Duration.ofMinutes(5))) {
                    throw new IllegalStateException("the coordinator did not lead within 5 minutes");
                }
                long leaderReadyMs = (System.nanoTime() - leaderStart) / 1_000_000;
                say.printf("leader ready in %d ms%n", leaderReadyMs);
                watcher.start();
                watcher.blockUntilConnected();
                List<Failover> failovers = new ArrayList<>();
                Random random = SEEDED.get();
                for (int f = 0; f < settings.failures(); f++) {
                    String victim = hostIds.remove(random.nextInt(hostIds.size()));
                    List<String> vms = placement.get(victim);
                    Thread.sleep(1000); // let the previous failover's writes settle
                    long requests0 = coordinator.writeRequests();
                    long ops0 = coordinator.writeOps();
                    long t0 = System.nanoTime();
                    agents.host(victim).kill();
                    long decided = waitFor(
                            t0,
                            vms,
                            vm -> {
                                VmRecord r = Records.vm(
                                        ClusterPaths.vm(vm), watcher.getData().forPath(ClusterPaths.vm(vm)));
                                return !r.getOwner().equals(victim) && r.getEpoch() == 2;
                            },
                            victim);
                    long running = waitFor(
                            t0, vms, vm -> watcher.checkExists().forPath(ClusterPaths.running(vm)) != null, victim);
                    Thread.sleep(500); // the intents' last writes
                    Failover result = new Failover(
                            victim,
                            vms.size(),
                            decided,
                            running,
                            coordinator.writeRequests() - requests0,
                            coordinator.writeOps() - ops0);
                    failovers.add(result);
                    say.printf(
                            "  lost %s (%d VMs): decisions written in %d ms, all running in %d ms, %d ZooKeeper writes (%d ops)%n",
                            victim, vms.size(), decided, running, result.writeRequests(), result.writeOps());
                }
                return new Report(settings, seedMs, leaderReadyMs, failovers);
            }
        } finally {
            deleteTree(dir);
        }
    }

    interface Check {
        boolean holds(String vm) throws Exception;
    }

    /** Polls until {@code check} holds for every VM; the ms since {@code t0} when it first did. */
    private static long waitFor(long t0, List<String> vms, Check check, String victim) throws Exception {
        List<String> left = new ArrayList<>(vms);
        while (true) {
            left.removeIf(vm -> {
                try {
                    return check.holds(vm);
                } catch (Exception e) {
                    return false;
                }
            });
            long now = System.nanoTime();
            if (left.isEmpty()) {
                return (now - t0) / 1_000_000;
            }
            if (now - t0 > Duration.ofMinutes(2).toNanos()) {
                throw new IllegalStateException(
                        "the VMs of " + victim + " were not restarted within 2 minutes: " + left);
            }
            Thread.sleep(1);
        }
    }

    private static void deleteTree(Path p) throws IOException {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        }
    }
}
