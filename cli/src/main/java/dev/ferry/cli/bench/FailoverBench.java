package dev.ferry.cli.bench;

import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.coordinator.CreateVmRequest;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.Workload;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.function.Function;

/**
 * Failover time: a local cluster (coordinator, embedded ZooKeeper, 3 agent processes, sim
 * driver); VMs on one host; kill -9 of that host's agent (its guests die with it); the time until
 * the coordinator reports the host gone, and until every one of its VMs runs on another host.
 * Repeated per session timeout; the killed agent is started again between runs.
 */
public final class FailoverBench {
    /** What to measure. */
    public record Settings(List<Long> sessionTimeoutsMs, int runs, int vms, long vmMemory) {}

    /** One kill. */
    public record Run(long sessionTimeoutMs, long detectMs, long allRunningMs, boolean epochsMovedOnce) {}

    /** Every run, with medians and maxima per session timeout. */
    public record Report(Settings settings, List<Run> runs) {
        public Map<String, Object> toJson() {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("runsPerTimeout", settings.runs());
            out.put("vmsPerHost", settings.vms());
            List<Map<String, Object>> per = new ArrayList<>();
            for (long t : settings.sessionTimeoutsMs()) {
                List<Run> rs =
                        runs.stream().filter(r -> r.sessionTimeoutMs() == t).toList();
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("sessionTimeoutMs", t);
                m.put("detectMsMedian", median(rs, Run::detectMs));
                m.put("detectMsMax", max(rs, Run::detectMs));
                m.put("failoverMsMedian", median(rs, Run::allRunningMs));
                m.put("failoverMsMax", max(rs, Run::allRunningMs));
                m.put("failoverMs", rs.stream().map(Run::allRunningMs).toList());
                m.put("everyVmRestartedOnce", rs.stream().allMatch(Run::epochsMovedOnce));
                per.add(m);
            }
            out.put("results", per);
            return out;
        }

        public String table() {
            StringBuilder b = new StringBuilder();
            b.append(String.format(
                    Locale.ROOT,
                    "Failover: kill -9 of a host running %d VMs, %d runs per session timeout%n",
                    settings.vms(),
                    settings.runs()));
            b.append(String.format(
                    Locale.ROOT,
                    "  %-16s %-22s %-22s %s%n",
                    "session timeout",
                    "host declared dead",
                    "all VMs running again",
                    "each VM restarted once"));
            for (long t : settings.sessionTimeoutsMs()) {
                List<Run> rs =
                        runs.stream().filter(r -> r.sessionTimeoutMs() == t).toList();
                b.append(String.format(
                        Locale.ROOT,
                        "  %-16s %-22s %-22s %s%n",
                        t + " ms",
                        "median " + median(rs, Run::detectMs) + ", max " + max(rs, Run::detectMs),
                        "median " + median(rs, Run::allRunningMs) + ", max " + max(rs, Run::allRunningMs),
                        rs.stream().allMatch(Run::epochsMovedOnce) ? "yes" : "NO"));
            }
            return b.toString();
        }
    }

    static long median(List<Run> rs, Function<Run, Long> f) {
        long[] xs = rs.stream().mapToLong(f::apply).sorted().toArray();
        return xs.length == 0 ? 0 : xs[xs.length / 2];
    }

    static long max(List<Run> rs, Function<Run, Long> f) {
        return rs.stream().mapToLong(f::apply).max().orElse(0);
    }

    private final Settings settings;
    private final PrintStream say;

    public FailoverBench(Settings settings, PrintStream say) {
        this.settings = settings;
        this.say = say;
    }

    public Report run() throws Exception {
        List<Run> runs = new ArrayList<>();
        for (long t : settings.sessionTimeoutsMs()) {
            Path dir = Files.createTempDirectory("ferry-bench-failover-");
            say.printf("session timeout %d ms: starting a cluster of 3 hosts%n", t);
            ClusterFile cluster = LocalCluster.up(
                    dir,
                    LocalCluster.Options.of(3, "sim").withSessionTimeout(Duration.ofMillis(t)),
                    Duration.ofSeconds(90));
            try (CoordinatorClient c = client(cluster)) {
                String victim = "host-1";
                for (int run = 1; run <= settings.runs(); run++) {
                    List<String> vms = new ArrayList<>();
                    for (int k = 0; k < settings.vms(); k++) {
                        String name = "f" + run + "-" + k;
                        vms.add(name);
                        c.createVm(CreateVmRequest.newBuilder()
                                .setSpec(VmSpec.newBuilder()
                                        .setSchemaVersion(1)
                                        .setName(name)
                                        .setMemoryBytes(settings.vmMemory())
                                        .setVcpus(1)
                                        .setWorkload(Workload.newBuilder()
                                                .setDirtyRatePagesPerSec(256)
                                                .setPattern(Pattern.PATTERN_COMPRESSIBLE)))
                                .setStart(true)
                                .setHost(victim)
                                .setRequestId(UUID.randomUUID().toString())
                                .build());
                    }
                    ProcessHandle agent =
                            LocalCluster.alive(cluster.host(victim)).orElseThrow();
                    long t0 = System.nanoTime();
                    agent.destroyForcibly();
                    long detect = -1;
                    long all = -1;
                    boolean once = true;
                    while (all < 0) {
                        long now = System.nanoTime();
                        if (detect < 0
                                && c.hosts().stream().noneMatch(h -> h.getId().equals(victim) && h.getAlive())) {
                            detect = (now - t0) / 1_000_000;
                        }
                        boolean done = true;
                        for (String vm : vms) {
                            VmView v = c.vm(vm);
                            done &= v.getState() == VmState.VM_STATE_RUNNING
                                    && !v.getOwner().equals(victim);
                        }
                        if (done) {
                            all = (System.nanoTime() - t0) / 1_000_000;
                            for (String vm : vms) {
                                VmView v = c.vm(vm);
                                once &= v.getEpoch() == 2 && v.getRestartAttempts() == 1;
                            }
                        } else if (now - t0 > Duration.ofMinutes(2).toNanos()) {
                            throw new IllegalStateException(
                                    "the VMs of " + victim + " did not run again within 2 minutes");
                        }
                        Thread.sleep(20);
                    }
                    runs.add(new Run(t, detect, all, once));
                    say.printf(
                            "  run %d: %s declared dead after %d ms, its %d VMs running elsewhere after %d ms%n",
                            run, victim, detect, vms.size(), all);
                    for (String vm : vms) {
                        c.deleteVm(vm, UUID.randomUUID().toString());
                    }
                    cluster = LocalCluster.restartAgent(dir, victim, Duration.ofSeconds(90));
                }
            } finally {
                LocalCluster.down(dir, Duration.ofSeconds(20));
                deleteQuietly(dir);
            }
        }
        return new Report(settings, runs);
    }

    private static CoordinatorClient client(ClusterFile f) {
        return new CoordinatorClient(
                dev.ferry.rpc.Transport.plaintext(),
                CoordinatorClient.zookeeper(dev.ferry.cluster.store.ZkClients.of(
                        f.zookeeper(),
                        f.clusterName(),
                        Duration.ofSeconds(10),
                        dev.ferry.cli.cluster.LocalPki.zooKeeper(f))),
                Duration.ofMinutes(5),
                Duration.ofSeconds(30));
    }

    static List<Long> parseList(String s) {
        return Arrays.stream(s.split(","))
                .map(String::trim)
                .map(Long::parseLong)
                .toList();
    }

    private static void deleteQuietly(Path dir) {
        try (var s = Files.walk(dir)) {
            for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            // a temp directory
        }
    }
}
