package dev.ferry.cli.cluster;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.cli.CliException;
import dev.ferry.cli.DaemonJvm;
import dev.ferry.hypervisor.storage.StorageRoots;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * A cluster on this machine, every part a background process on loopback: one coordinator (which
 * also runs the embedded ZooKeeper server, data under DIR/zk) and N agents joined to it. For
 * trying Ferry out, the demo, benchmarks, and tests that kill a host for real.
 */
public final class LocalCluster {
    private LocalCluster() {}

    /** The name of a local cluster in its ZooKeeper. */
    public static final String NAME = "default";

    /**
     * What to start.
     *
     * @param withCoordinator false: agents only, standalone (the transfer benchmark)
     * @param sessionTimeout the agents' ZooKeeper session timeout (failover takes about this long)
     * @param hostMemory memory each agent offers VMs, 0 for this machine's
     * @param hostVcpus vCPUs each agent offers, 0 for the default (4 per core)
     */
    public record Options(
            int hosts,
            String driver,
            boolean withCoordinator,
            Duration sessionTimeout,
            long hostMemory,
            int hostVcpus,
            boolean insecure) {
        public static Options of(int hosts, String driver) {
            return new Options(hosts, driver, true, Duration.ofSeconds(10), 0, 0, false);
        }

        public Options withSessionTimeout(Duration t) {
            return new Options(hosts, driver, withCoordinator, t, hostMemory, hostVcpus, insecure);
        }

        public Options standalone() {
            return new Options(hosts, driver, false, sessionTimeout, hostMemory, hostVcpus, insecure);
        }

        /** Without TLS: every part plaintext (benchmarks comparing the cost); each daemon logs it. */
        public Options insecure(boolean yes) {
            return new Options(hosts, driver, withCoordinator, sessionTimeout, hostMemory, hostVcpus, yes);
        }
    }

    /** The TLS flags of a daemon of the cluster at {@code dir}: its certificate, or --insecure. */
    private static List<String> tlsArgs(String pki, String sub, String name) {
        return pki == null ? List.of("--insecure") : LocalPki.daemonArgs(Path.of(pki), sub, name);
    }

    public static ClusterFile up(Path dir, int hosts, String driver, Duration timeout) {
        return up(dir, Options.of(hosts, driver), timeout);
    }

    /** Starts the cluster; on any failure stops what was started and throws. */
    public static ClusterFile up(Path dir, Options o, Duration timeout) {
        if (o.hosts() < 1 || o.hosts() > 64) {
            throw new CliException("--hosts must be between 1 and 64, got " + o.hosts(), 2);
        }
        dir = dir.toAbsolutePath().normalize();
        if (Files.exists(dir.resolve(ClusterFile.NAME))) {
            ClusterFile old;
            try {
                old = ClusterFile.read(dir);
            } catch (CliException e) {
                throw new CliException("a cluster file from another ferry is at " + dir + ": " + e.getMessage());
            }
            if (old.hosts().stream().anyMatch(h -> alive(h).isPresent())
                    || (old.coordinator() != null
                            && aliveCoordinator(old.coordinator()).isPresent())) {
                throw new CliException("a cluster is already running at " + dir
                        + "; stop it with 'ferry cluster down --dir " + dir + "'");
            }
        }
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new CliException("cannot create " + dir + ": " + e.getMessage());
        }
        List<Process> processes = new ArrayList<>();
        long deadline = System.nanoTime() + timeout.toNanos();
        List<String> hostIds = new ArrayList<>();
        for (int i = 1; i <= o.hosts(); i++) {
            hostIds.add("host-" + i);
        }
        String pki;
        if (o.insecure()) {
            deleteTree(dir.resolve(LocalPki.DIR)); // no stale certificates suggesting otherwise
            pki = null;
        } else {
            pki = LocalPki.create(dir, NAME, hostIds).toString();
        }
        try {
            ClusterFile.Coordinator coordinator = null;
            String zk = null;
            if (o.withCoordinator()) {
                Path cdir = dir.resolve("coordinator");
                Path zkData = dir.resolve("zk");
                deleteTree(zkData); // a new cluster: no records of an old one
                Files.createDirectories(cdir);
                Path endpointFile = cdir.resolve("endpoint");
                Files.deleteIfExists(endpointFile);
                Path log = cdir.resolve("coordinator.log");
                List<String> args = new ArrayList<>(List.of(
                        "coordinator",
                        "--embedded-zk",
                        zkData.toString(),
                        "--cluster-name",
                        NAME,
                        "--listen",
                        "127.0.0.1:0",
                        "--single-machine",
                        "--endpoint-file",
                        endpointFile.toString(),
                        "--agent-session-timeout-ms",
                        Long.toString(o.sessionTimeout().toMillis()),
                        // Every daemon serves its metrics on a free loopback port; the endpoint file says which.
                        "--metrics-listen",
                        "127.0.0.1:0"));
                args.addAll(tlsArgs(pki, "coordinator", LocalPki.COORDINATOR));
                Process p = spawn(DaemonJvm.COORDINATOR, args, log);
                processes.add(p);
                Map<String, String> ends = awaitEndpoints(endpointFile, p, log, "the coordinator", deadline, timeout);
                zk = ends.get("zookeeper");
                coordinator = new ClusterFile.Coordinator(
                        ends.get("coordinator"), p.pid(), log.toString(), zkData.toString(), ends.get("metrics"));
            }
            String ramBase = ramBase(dir);
            List<ClusterFile.Host> started = new ArrayList<>();
            for (String id : hostIds) {
                started.add(startAgentProcess(dir, id, o, zk, ramBase, pki, processes));
            }
            List<ClusterFile.Host> ready = new ArrayList<>();
            for (int i = 0; i < started.size(); i++) {
                ClusterFile.Host h = started.get(i);
                Process p = processes.get(processes.size() - started.size() + i);
                Path endpointFile = Path.of(h.dataDir(), "endpoint");
                Map<String, String> ends =
                        awaitEndpoints(endpointFile, p, Path.of(h.log()), "agent " + h.id(), deadline, timeout);
                ready.add(new ClusterFile.Host(
                        h.id(), ends.get("endpoint"), h.pid(), h.dataDir(), h.ramDir(), h.log(), ends.get("metrics")));
            }
            ClusterFile file = new ClusterFile(
                    ClusterFile.VERSION,
                    o.driver(),
                    Instant.now().toString(),
                    zk,
                    o.withCoordinator() ? NAME : null,
                    o.sessionTimeout().toMillis(),
                    coordinator,
                    ready,
                    pki);
            file.write(dir);
            return file;
        } catch (IOException e) {
            stopProcesses(processes);
            throw new CliException("cannot start the cluster: " + e.getMessage());
        } catch (InterruptedException e) {
            stopProcesses(processes);
            Thread.currentThread().interrupt();
            throw new CliException("interrupted while starting the cluster");
        } catch (RuntimeException e) {
            stopProcesses(processes);
            throw e;
        }
    }

    private static String ramBase(Path dir) {
        return ramRoot() + "/" + Integer.toHexString(dir.toString().hashCode());
    }

    private static ClusterFile.Host startAgentProcess(
            Path dir, String id, Options o, String zk, String ramBase, String pki, List<Process> processes)
            throws IOException {
        Path data = dir.resolve(id);
        Path ram = Path.of(ramBase, id);
        Path endpointFile = data.resolve("endpoint");
        Path log = data.resolve("agent.log");
        Files.createDirectories(data);
        Files.deleteIfExists(endpointFile);
        List<String> args = new ArrayList<>(List.of(
                "agent",
                "--host-id",
                id,
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data.toString(),
                "--ram-dir",
                ram.toString(),
                "--driver",
                o.driver(),
                "--endpoint-file",
                endpointFile.toString(),
                "--metrics-listen",
                "127.0.0.1:0"));
        args.addAll(tlsArgs(pki, "agents", id));
        // One images directory for the whole cluster: a VM's files must be under a storage root of
        // every host it may run on, and these hosts share one machine.
        Path images = Files.createDirectories(dir.resolve("images"));
        args.addAll(List.of("--storage-root", images.toString()));
        if (Files.isDirectory(StorageRoots.SYSTEM)) {
            args.addAll(List.of("--storage-root", StorageRoots.SYSTEM.toString()));
        }
        if (zk != null) {
            args.addAll(List.of(
                    "--zk",
                    zk,
                    "--single-machine",
                    "--cluster-name",
                    NAME,
                    "--session-timeout-ms",
                    Long.toString(o.sessionTimeout().toMillis())));
            if (o.hostMemory() > 0) {
                args.addAll(List.of("--memory", Long.toString(o.hostMemory())));
            }
            if (o.hostVcpus() > 0) {
                args.addAll(List.of("--vcpus", Integer.toString(o.hostVcpus())));
            }
        }
        Process p = spawn(DaemonJvm.AGENT, args, log);
        processes.add(p);
        return new ClusterFile.Host(id, null, p.pid(), data.toString(), ram.toString(), log.toString(), null);
    }

    /**
     * Starts host {@code id} of a running cluster again (after it was killed): same directories,
     * a new process. Returns the cluster file updated with it.
     */
    public static ClusterFile restartAgent(Path dir, String id, Duration timeout) {
        dir = dir.toAbsolutePath().normalize();
        ClusterFile f = ClusterFile.read(dir);
        ClusterFile.Host old = f.host(id);
        if (alive(old).isPresent()) {
            throw new CliException("agent " + id + " is still running (pid " + old.pid() + ")");
        }
        Options o = new Options(
                f.hosts().size(),
                f.driver(),
                f.clustered(),
                Duration.ofMillis(f.sessionTimeoutMs()),
                0,
                0,
                f.pki() == null);
        List<Process> processes = new ArrayList<>();
        try {
            ClusterFile.Host h = startAgentProcess(
                    dir, id, o, f.zookeeper(), Path.of(old.ramDir()).getParent().toString(), f.pki(), processes);
            Map<String, String> ends = awaitEndpoints(
                    Path.of(h.dataDir(), "endpoint"),
                    processes.getFirst(),
                    Path.of(h.log()),
                    "agent " + id,
                    System.nanoTime() + timeout.toNanos(),
                    timeout);
            List<ClusterFile.Host> hosts = new ArrayList<>();
            for (ClusterFile.Host x : f.hosts()) {
                hosts.add(
                        x.id().equals(id)
                                ? new ClusterFile.Host(
                                        id,
                                        ends.get("endpoint"),
                                        h.pid(),
                                        h.dataDir(),
                                        h.ramDir(),
                                        h.log(),
                                        ends.get("metrics"))
                                : x);
            }
            ClusterFile updated = f.withHosts(hosts);
            updated.write(dir);
            return updated;
        } catch (IOException e) {
            stopProcesses(processes);
            throw new CliException("cannot start agent " + id + ": " + e.getMessage());
        } catch (InterruptedException e) {
            stopProcesses(processes);
            Thread.currentThread().interrupt();
            throw new CliException("interrupted");
        }
    }

    private static Process spawn(List<String> jvm, List<String> args, Path log) throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(javaBinary());
        cmd.addAll(jvm);
        // Last, so that an operator's options (a larger heap, a flight recording) win over ours.
        String extra = System.getenv("FERRY_JAVA_OPTS");
        if (extra != null && !extra.isBlank()) {
            cmd.addAll(List.of(extra.trim().split("\\s+")));
        }
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add("dev.ferry.cli.Main");
        cmd.addAll(args);
        return new ProcessBuilder(cmd)
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
                .redirectErrorStream(true)
                .start();
    }

    /**
     * Waits for a process to write its endpoint file ("key value" lines; a single line is the
     * endpoint), failing early with its log if it exits.
     */
    private static Map<String, String> awaitEndpoints(
            Path file, Process p, Path log, String what, long deadline, Duration timeout)
            throws IOException, InterruptedException {
        while (!Files.exists(file)) {
            if (!p.isAlive()) {
                throw new CliException(
                        what + " exited with code " + p.exitValue() + " during start-up:\n" + tail(log, 15));
            }
            if (System.nanoTime() > deadline) {
                throw new CliException(what + " did not start within " + timeout.toSeconds() + " s; see " + log);
            }
            Thread.sleep(50);
        }
        Map<String, String> out = new HashMap<>();
        List<String> lines = Files.readAllLines(file, StandardCharsets.UTF_8);
        for (String line : lines) {
            String[] kv = line.trim().split("\\s+", 2);
            if (kv.length == 2) {
                out.put(kv[0], kv[1]);
            } else if (!kv[0].isEmpty()) {
                out.put("endpoint", kv[0]);
            }
        }
        return out;
    }

    private static void stopProcesses(List<Process> processes) {
        for (Process p : processes) {
            p.destroy();
        }
        for (Process p : processes) {
            try {
                if (!p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
                    p.destroyForcibly().waitFor(5, java.util.concurrent.TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                p.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }

    /** The running agent process of {@code host}, verified by its command line (pids are reused). */
    public static Optional<ProcessHandle> alive(ClusterFile.Host host) {
        return ProcessHandle.of(host.pid()).filter(ProcessHandle::isAlive).filter(p -> {
            List<String> args = commandLine(p.pid());
            return args.contains("agent") && args.contains(host.id()) && args.contains(host.dataDir());
        });
    }

    /** The running coordinator process, verified by its command line. */
    public static Optional<ProcessHandle> aliveCoordinator(ClusterFile.Coordinator c) {
        return ProcessHandle.of(c.pid()).filter(ProcessHandle::isAlive).filter(p -> {
            List<String> args = commandLine(p.pid());
            return args.contains("coordinator") && args.contains(c.zkDataDir());
        });
    }

    /** A process's arguments from /proc (ProcessHandle.Info omits them for long command lines). */
    static List<String> commandLine(long pid) {
        try {
            byte[] raw = Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline"));
            return List.of(new String(raw, StandardCharsets.UTF_8).split("\u0000"));
        } catch (IOException e) {
            return List.of();
        }
    }

    /**
     * Stops the cluster: the coordinator first (so that nothing restarts the agents' VMs while they
     * stop), then every agent (TERM, then KILL after a grace period), and removes leftover RAM files
     * and the cluster's ZooKeeper data.
     */
    public static List<String> down(Path dir, Duration grace) {
        dir = dir.toAbsolutePath().normalize();
        ClusterFile file = ClusterFile.read(dir);
        List<String> report = new ArrayList<>();
        if (file.coordinator() != null) {
            Optional<ProcessHandle> c = aliveCoordinator(file.coordinator());
            if (c.isPresent()) {
                report.add("stopping the coordinator and ZooKeeper (pid "
                        + file.coordinator().pid() + ")");
                stop(List.of(c.get()), grace, report);
            } else {
                report.add("the coordinator was not running");
            }
        }
        List<ProcessHandle> running = new ArrayList<>();
        for (ClusterFile.Host h : file.hosts()) {
            Optional<ProcessHandle> p = alive(h);
            if (p.isPresent()) {
                running.add(p.get());
                report.add("stopping " + h.id() + " (pid " + h.pid() + ")");
            } else {
                report.add(h.id() + " was not running");
            }
        }
        stop(running, grace, report);
        for (ClusterFile.Host h : file.hosts()) {
            if (alive(h).isPresent()) {
                throw new CliException("agent " + h.id() + " (pid " + h.pid() + ") is still running");
            }
            // Agents leave their QEMU guests running when they exit (for a restarted agent to adopt),
            // and a killed host's guests wait, stopped by their leases: none of them has a future here.
            killGuests(Path.of(h.dataDir()), report);
            deleteTree(Path.of(h.ramDir()));
        }
        if (!file.hosts().isEmpty()) {
            try {
                Files.deleteIfExists(Path.of(file.hosts().getFirst().ramDir()).getParent()); // only if empty
            } catch (IOException e) {
                // another host's RAM is still there, or it went already
            }
        }
        if (file.coordinator() != null) {
            if (aliveCoordinator(file.coordinator()).isPresent()) {
                throw new CliException(
                        "the coordinator (pid " + file.coordinator().pid() + ") is still running");
            }
            deleteTree(Path.of(file.coordinator().zkDataDir()));
        }
        try {
            Files.deleteIfExists(dir.resolve(ClusterFile.NAME));
        } catch (IOException e) {
            report.add("cannot remove " + dir.resolve(ClusterFile.NAME) + ": " + e.getMessage());
        }
        return report;
    }

    /** Kills the QEMU processes recorded in an agent's run directories (pid and start time must match). */
    static void killGuests(Path agentDataDir, List<String> report) {
        Path vms = agentDataDir.resolve("vms");
        if (!Files.isDirectory(vms)) {
            return;
        }
        try (var runs = Files.list(vms)) {
            for (Path run : runs.toList()) {
                Optional<ProcessHandle> q = dev.ferry.hypervisor.qemu.QemuProcess.recorded(run.resolve("qemu.pid"));
                if (q.isPresent()) {
                    q.get().destroyForcibly();
                    report.add("stopped the guest " + run.getFileName() + " (QEMU pid "
                            + q.get().pid() + ")");
                    try {
                        q.get().onExit().get(5, java.util.concurrent.TimeUnit.SECONDS);
                    } catch (Exception e) {
                        report.add("QEMU pid " + q.get().pid() + " did not end within 5 s");
                    }
                }
            }
        } catch (IOException e) {
            report.add("cannot look for guests in " + vms + ": " + e.getMessage());
        }
        // A QEMU launched just before its agent was killed may have no pid file yet.
        for (ProcessHandle q : dev.ferry.hypervisor.qemu.QemuProcess.runningUnder(agentDataDir)) {
            q.destroyForcibly();
            report.add("stopped a QEMU without a pid file (pid " + q.pid() + ")");
            try {
                q.onExit().get(5, java.util.concurrent.TimeUnit.SECONDS);
            } catch (Exception e) {
                report.add("QEMU pid " + q.pid() + " did not end within 5 s");
            }
        }
    }

    private static void stop(List<ProcessHandle> processes, Duration grace, List<String> report) {
        for (ProcessHandle p : processes) {
            p.destroy();
        }
        long deadline = System.nanoTime() + grace.toNanos();
        for (ProcessHandle p : processes) {
            try {
                long left = Math.max(0, deadline - System.nanoTime());
                p.onExit().get(left, java.util.concurrent.TimeUnit.NANOSECONDS);
            } catch (Exception e) {
                p.destroyForcibly();
                report.add("pid " + p.pid() + " did not stop in time; killed");
                try {
                    p.onExit().get(5, java.util.concurrent.TimeUnit.SECONDS);
                } catch (Exception ignored) {
                    // reported by the caller if still alive
                }
            }
        }
    }

    /**
     * Where the agents' RAM directories go: FERRY_RAM_ROOT, or /dev/shm/ferry. It must be tmpfs;
     * a tmpfs mounted with huge=within_size makes page I/O about three times cheaper.
     */
    static String ramRoot() {
        String root = System.getenv("FERRY_RAM_ROOT");
        return root == null || root.isBlank() ? "/dev/shm/ferry" : root;
    }

    /** A client of agent {@code h} of {@code file}'s cluster, as its operator (or plaintext if --insecure). */
    public static AgentClient client(ClusterFile file, ClusterFile.Host h, Duration deadline) {
        return new AgentClient(LocalPki.transport(file), h.id(), Endpoint.parse(h.endpoint()), deadline);
    }

    /** Opens clients to every host; callers close them. */
    public static List<AgentClient> clients(ClusterFile file, Duration deadline) {
        Transport t = LocalPki.transport(file);
        List<AgentClient> out = new ArrayList<>();
        for (ClusterFile.Host h : file.hosts()) {
            out.add(new AgentClient(t, h.id(), Endpoint.parse(h.endpoint()), deadline));
        }
        return out;
    }

    /** The host that has {@code vm} (standalone clusters), or a clear error. */
    public static ClusterFile.Host locate(ClusterFile file, String vm, Duration deadline) {
        List<String> unreachable = new ArrayList<>();
        for (ClusterFile.Host h : file.hosts()) {
            try (AgentClient c = client(file, h, deadline)) {
                var status = c.getVm(vm);
                if (status.getState() != dev.ferry.proto.vm.VmState.VM_STATE_INCOMING) {
                    return h;
                }
            } catch (AgentCallException e) {
                if (e.unreachable()) {
                    unreachable.add(h.id());
                }
            }
        }
        throw new CliException("no VM named '" + vm + "' in the cluster"
                + (unreachable.isEmpty() ? "" : " (unreachable: " + String.join(", ", unreachable) + ")"));
    }

    static String javaBinary() {
        return ProcessHandle.current()
                .info()
                .command()
                .orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    }

    static String tail(Path file, int lines) {
        try {
            List<String> all = Files.readAllLines(file, StandardCharsets.UTF_8);
            return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException e) {
            return "(no log: " + e.getMessage() + ")";
        }
    }

    static void deleteTree(Path p) {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        } catch (IOException e) {
            // best effort: tmpfs files of a dead agent
        }
    }
}
