package dev.ferry.cli;

import dev.ferry.agent.client.AgentClient;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.coordinator.CreateVmRequest;
import dev.ferry.proto.coordinator.DrainProgress;
import dev.ferry.proto.coordinator.DrainRequest;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import dev.ferry.proto.vm.Workload;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(
        name = "demo",
        description = {
            "The one-command tour: start a local cluster (coordinator, embedded ZooKeeper, 3 agents), move a "
                    + "busy VM live with memory verification, drain a host live, kill -9 a host and watch its VMs "
                    + "restart elsewhere, then stop everything."
        })
final class DemoCommand implements java.util.concurrent.Callable<Integer> {
    /** Short, so the failover part of the tour does not keep the operator waiting; production uses 10 s. */
    static final Duration SESSION_TIMEOUT = Duration.ofSeconds(4);

    @Option(names = "--driver", defaultValue = "sim", description = "sim or qemu (default: ${DEFAULT-VALUE}).")
    String driver;

    @Option(
            names = "--memory",
            defaultValue = "512M",
            description = "Guest RAM of the migrated VM (default: ${DEFAULT-VALUE}).")
    String memory;

    @Option(
            names = "--json",
            description = "Print {\"migrations\": [...], \"drain\": {...}, \"failover\": {...}} on stdout; "
                    + "narration goes to stderr.")
    boolean json;

    @Option(names = "--keep", description = "Leave the cluster running at the end (it prints how to stop it).")
    boolean keep;

    @Option(
            names = "--insecure",
            description = "Run the demo's cluster without TLS (by default it gets its own CA and a certificate for "
                    + "every part).")
    boolean insecure;

    @Override
    public Integer call() throws IOException, InterruptedException {
        Drivers.checkName(driver);
        PrintStream say = json ? System.err : System.out;
        long mem = Sizes.parseSize(memory);
        Path dir = Files.createTempDirectory("ferry-demo-");
        say.println("Ferry demo: starting a cluster on loopback in " + dir
                + ": a coordinator with an embedded ZooKeeper " + "server, and 3 agents (" + driver
                + " driver, ZooKeeper session timeout " + SESSION_TIMEOUT.toMillis() + " ms), "
                + (insecure ? "WITHOUT TLS (--insecure)" : "all talking mutual TLS with certificates from its own CA"));
        ClusterFile cluster = LocalCluster.up(
                dir,
                LocalCluster.Options.of(3, driver)
                        .withSessionTimeout(SESSION_TIMEOUT)
                        .insecure(insecure),
                Duration.ofSeconds(90));
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("dir", dir.toString());
        List<Map<String, Object>> migrations = new ArrayList<>();
        out.put("migrations", migrations);
        boolean ok = false;
        try (CoordinatorClient c = ClusterOption.client(cluster)) {
            say.println("  coordinator at " + cluster.coordinator().endpoint() + ", ZooKeeper at " + cluster.zookeeper()
                    + "; metrics at http://" + cluster.coordinator().metrics() + "/metrics");
            for (ClusterFile.Host h : cluster.hosts()) {
                say.println("  " + h.id() + " at " + h.endpoint() + " (pid " + h.pid() + "); metrics at http://"
                        + h.metrics() + "/metrics");
            }

            // 1. A live migration through the cluster.
            String vm = "demo-vm";
            long workingSet = Math.min(mem / 4, 128L << 20);
            long rate = 16L << 20;
            say.printf(
                    "%ncreating %s on host-1: %s of RAM, the guest writes %s over a %s working set%n",
                    vm, Sizes.format(mem), Sizes.formatRate(rate), Sizes.format(workingSet));
            create(
                    c,
                    VmSpec.newBuilder()
                            .setSchemaVersion(1)
                            .setName(vm)
                            .setMemoryBytes(mem)
                            .setVcpus(1)
                            .setWorkload(Workload.newBuilder()
                                    .setDirtyRatePagesPerSec(rate / 4096)
                                    .setWorkingSetBytes(workingSet)
                                    .setHotSetBytes(workingSet / 8)
                                    .setHotPercent(80)
                                    .setPattern(Pattern.PATTERN_COMPRESSIBLE))
                            .build(),
                    "host-1");
            Thread.sleep(1000);
            long beforeBeat = c.vm(vm).getHeartbeat();
            say.printf(
                    "migrating %s from host-1 to host-2 live, verifying memory at the switchover; the commit is one "
                            + "ZooKeeper transaction%n",
                    vm);
            MigrationSummary s = MigrateCommand.run(
                    c,
                    vm,
                    "host-2",
                    MigrationOptions.newBuilder()
                            .setVerify(true)
                            .setDowntimeMs(300)
                            .build(),
                    UUID.randomUUID().toString(),
                    new ProgressPrinter(say, false),
                    true);
            migrations.add(Json.migration(s));
            if (s.getStatus() != MigrationPhase.MIGRATION_PHASE_COMPLETED) {
                return finish(out, 1);
            }
            long arrived = c.vm(vm).getHeartbeat();
            for (int i = 0; i < 50 && arrived <= 0; i++) {
                // A QEMU guest's console on the new host is empty until its next heartbeat line.
                Thread.sleep(100);
                arrived = c.vm(vm).getHeartbeat();
            }
            VmView after = awaitHeartbeatPast(c, vm, arrived);
            Map<String, Object> guest = new LinkedHashMap<>();
            guest.put("host", after.getOwner());
            guest.put("epoch", after.getEpoch());
            guest.put("heartbeatBefore", beforeBeat);
            guest.put("heartbeatArrived", arrived);
            guest.put("heartbeatLater", after.getHeartbeat());
            out.put("guest", guest);
            say.printf(
                    "%s runs on %s at epoch %d; its heartbeat went %d -> %d -> %d: the guest kept counting, no restart%n",
                    vm, after.getOwner(), after.getEpoch(), beforeBeat, arrived, after.getHeartbeat());

            // 2. Maintenance: drain host-2 live.
            say.printf(
                    "%nputting two more VMs on host-2, then draining host-2 for maintenance (2 migrations at a time)%n");
            for (String name : List.of("svc-a", "svc-b")) {
                create(
                        c,
                        VmSpec.newBuilder()
                                .setSchemaVersion(1)
                                .setName(name)
                                .setMemoryBytes(64L << 20)
                                .setVcpus(1)
                                .setWorkload(Workload.newBuilder()
                                        .setDirtyRatePagesPerSec((4L << 20) / 4096)
                                        .setWorkingSetBytes(32L << 20)
                                        .setPattern(Pattern.PATTERN_COMPRESSIBLE))
                                .build(),
                        "host-2");
            }
            HostCommand.DrainPrinter printer = new HostCommand.DrainPrinter(say);
            DrainProgress drained = c.drain(
                    DrainRequest.newBuilder()
                            .setHost("host-2")
                            .setParallel(2)
                            .setRequestId(UUID.randomUUID().toString())
                            .build(),
                    printer::show,
                    true);
            printer.show(drained);
            say.println(drained.getMessage());
            out.put("drain", HostCommand.drainJson(drained));
            if (drained.getState() != IntentState.INTENT_STATE_DONE) {
                return finish(out, 1);
            }
            c.activate("host-2", UUID.randomUUID().toString());
            say.println("host-2 is active again");
            say.println("each migration's record (rounds, limits, the pause by step, charts): ferry report " + vm
                    + " --html report.html"
                    + (keep ? " (after the demo)" : " (run the demo with --keep to keep the" + " cluster for it)"));

            // 3. Failover: kill -9 the host that runs demo-vm now.
            VmView target = c.vm(vm);
            String victim = target.getOwner();
            List<String> victims = c.vms(false).stream()
                    .filter(v -> v.getOwner().equals(victim))
                    .map(v -> v.getSpec().getName())
                    .toList();
            ProcessHandle agent = LocalCluster.alive(cluster.host(victim))
                    .orElseThrow(() -> new CliException("the agent of " + victim + " is not running"));
            say.printf(
                    "%nkilling %s's agent (pid %d) with SIGKILL: %s die%s with it%n",
                    victim, agent.pid(), String.join(" and ", victims), victims.size() == 1 ? "s" : "");
            long killed = System.nanoTime();
            agent.destroyForcibly();
            long detectMs = -1;
            Map<String, Long> restartMs = new HashMap<>();
            Map<String, VmView> restarted = new HashMap<>();
            long deadline = killed + Duration.ofSeconds(90).toNanos();
            while (restartMs.size() < victims.size() && System.nanoTime() < deadline) {
                if (detectMs < 0 && c.hosts().stream().noneMatch(h -> h.getId().equals(victim) && h.getAlive())) {
                    detectMs = (System.nanoTime() - killed) / 1_000_000;
                    say.printf(
                            "  %d ms: ZooKeeper expired %s's session (timeout %d ms); the coordinator restarts its VMs%n",
                            detectMs, victim, SESSION_TIMEOUT.toMillis());
                }
                for (String name : victims) {
                    if (restartMs.containsKey(name)) {
                        continue;
                    }
                    VmView v = c.vm(name);
                    if (v.getState() == VmState.VM_STATE_RUNNING
                            && !v.getOwner().equals(victim)) {
                        restartMs.put(name, (System.nanoTime() - killed) / 1_000_000);
                        restarted.put(name, v);
                        say.printf(
                                "  %d ms: %s runs again on %s (epoch %d), started cold from its spec%n",
                                restartMs.get(name), name, v.getOwner(), v.getEpoch());
                    }
                }
                Thread.sleep(50);
            }
            if (restartMs.size() < victims.size()) {
                say.println("not every VM of " + victim + " came back within 90 s");
                return finish(out, 1);
            }
            VmView back = restarted.get(vm);
            Map<String, Object> failover = new LinkedHashMap<>();
            failover.put("vm", vm);
            failover.put("from", victim);
            failover.put("to", back.getOwner());
            failover.put("detectMs", detectMs);
            failover.put("restartMs", restartMs.get(vm));
            failover.put("sessionTimeoutMs", SESSION_TIMEOUT.toMillis());
            failover.put(
                    "vms",
                    victims.stream()
                            .map(n -> Map.of("vm", n, "to", restarted.get(n).getOwner(), "restartMs", restartMs.get(n)))
                            .toList());
            out.put("failover", failover);
            long beat = c.vm(vm).getHeartbeat();
            long later = awaitHeartbeatPast(c, vm, beat).getHeartbeat();
            failover.put("heartbeatBefore", beat);
            failover.put("heartbeatLater", later);
            // Every VM runs on exactly one host: what each live agent says it runs, asked directly.
            Map<String, List<String>> running = new java.util.TreeMap<>();
            for (ClusterFile.Host h : cluster.hosts()) {
                if (h.id().equals(victim)) {
                    continue;
                }
                try (AgentClient a = LocalCluster.client(cluster, h, Duration.ofSeconds(10))) {
                    for (VmStatus st : a.listVms()) {
                        if (st.getState() == VmState.VM_STATE_RUNNING) {
                            running.computeIfAbsent(st.getSpec().getName(), k -> new ArrayList<>())
                                    .add(h.id());
                        }
                    }
                }
            }
            out.put("runningOn", running);
            say.printf(
                    "%s was back %d ms after the kill (session timeout %d ms + failover margin + cold start); "
                            + "heartbeat %d -> %d on %s%n",
                    vm, restartMs.get(vm), SESSION_TIMEOUT.toMillis(), beat, later, back.getOwner());
            ok = true;
            return finish(out, 0);
        } finally {
            if (keep && ok) {
                say.println("cluster left running: export FERRY_CLUSTER=" + dir
                        + "; look back at demo-vm's last migration with: ferry report demo-vm --html report.html; stop it with: ferry "
                        + "cluster down --dir " + dir);
            } else {
                LocalCluster.down(dir, Duration.ofSeconds(20));
                deleteQuietly(dir);
                say.println("stopped the cluster; nothing is left running");
            }
        }
    }

    /** The VM's view once its heartbeat passed {@code beat}, or after 10 s (the view then says it did not). */
    private static VmView awaitHeartbeatPast(CoordinatorClient c, String vm, long beat) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        VmView v = c.vm(vm);
        while (v.getHeartbeat() <= beat && System.nanoTime() < deadline) {
            Thread.sleep(100);
            v = c.vm(vm);
        }
        return v;
    }

    private static void create(CoordinatorClient c, VmSpec spec, String host) {
        c.createVm(CreateVmRequest.newBuilder()
                .setSpec(spec)
                .setStart(true)
                .setHost(host)
                .setRequestId(UUID.randomUUID().toString())
                .build());
    }

    private int finish(Map<String, Object> out, int code) {
        if (json) {
            System.out.println(Json.write(out));
        }
        return code;
    }

    private static void deleteQuietly(Path dir) {
        try (var s = Files.walk(dir)) {
            for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            // a temp directory; the OS cleans it eventually
        }
    }
}
