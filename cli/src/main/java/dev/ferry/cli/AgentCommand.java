package dev.ferry.cli;

import dev.ferry.agent.Agent;
import dev.ferry.agent.AgentConfig;
import dev.ferry.agent.CommitProvider;
import dev.ferry.agent.cluster.ClusterAgent;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.pki.Role;
import dev.ferry.rpc.Endpoint;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(
        name = "agent",
        description = {
            "Run the per-host agent daemon (until SIGTERM or SIGINT).",
            "With --zk it joins a cluster: it registers in ZooKeeper and runs VMs only while the cluster says "
                    + "it owns them. Its QEMU guests run under leases it renews: if the agent is frozen or dies, or "
                    + "loses ZooKeeper on its own, they stop by themselves before the cluster can restart them "
                    + "elsewhere. On SIGTERM it leaves its QEMU guests running for the next agent process on this host "
                    + "to adopt (an upgrade needs no drain). Without --zk it runs standalone."
        })
final class AgentCommand implements java.util.concurrent.Callable<Integer> {
    /** The shortest idle deadline accepted: a source's quiet spells (between rounds, a save's set-up) last up to a second or so. */
    static final long MIN_IDLE_TIMEOUT_MS = 2_000;

    @Option(names = "--host-id", required = true, description = "This host's name in the cluster.")
    String hostId;

    @Option(
            names = "--listen",
            required = true,
            paramLabel = "ADDR",
            description = "HOST:PORT to serve on (port 0 picks one).")
    String listen;

    @Option(
            names = "--advertise",
            paramLabel = "ADDR",
            description = "HOST:PORT other hosts reach this agent at, registered in ZooKeeper (default: the --listen "
                    + "address with the bound port). Required with --zk when --listen is a wildcard (0.0.0.0); never "
                    + "loopback unless --single-machine.")
    String advertise;

    @Option(
            names = "--single-machine",
            description = "Every daemon of this cluster runs on this machine (as `ferry cluster up` starts them): "
                    + "allows a loopback --listen/--advertise address with --zk.")
    boolean singleMachine;

    @Option(
            names = "--data-dir",
            required = true,
            paramLabel = "DIR",
            description = "Per-VM run directories (logs, sockets).")
    Path dataDir;

    @Option(
            names = "--ram-dir",
            paramLabel = "DIR",
            description = "Guest RAM files, on tmpfs (default: /dev/shm/ferry/HOST-ID).")
    Path ramDir;

    @Option(
            names = "--storage-root",
            paramLabel = "DIR",
            description = "A directory of VM images: the qemu driver takes a VM's kernel, initrd and disks only as "
                    + "regular files under one of these (symlinks resolved); repeatable (default: DATA-DIR/images "
                    + "and /var/lib/ferry/images).")
    List<Path> storageRoots = List.of();

    @Option(
            names = "--driver",
            defaultValue = "sim",
            description = "Hypervisor driver: sim or qemu (default: ${DEFAULT-VALUE}).")
    String driver;

    @Option(
            names = "--qemu-binary",
            paramLabel = "FILE",
            defaultValue = "qemu-system-x86_64",
            description = "The QEMU this host runs (qemu driver; default: ${DEFAULT-VALUE} on PATH). Its version, "
                    + "machine types and CPU models are registered at start and decide which VMs may come here.")
    Path qemuBinary;

    @Option(
            names = "--endpoint-file",
            paramLabel = "FILE",
            description = "Write the bound HOST:PORT here once serving (and, with --zk, once in the cluster).")
    Path endpointFile;

    @Option(
            names = "--zk",
            paramLabel = "CONNECT",
            description = "Join the cluster whose ZooKeeper this is (host:port,...).")
    String zk;

    @Option(
            names = "--cluster-name",
            paramLabel = "NAME",
            defaultValue = "default",
            description = "The cluster's name in ZooKeeper (default: ${DEFAULT-VALUE}).")
    String clusterName;

    @Option(
            names = "--session-timeout-ms",
            defaultValue = "10000",
            description =
                    "ZooKeeper session timeout: how long a lost host takes to be declared dead (default: ${DEFAULT-VALUE}).")
    long sessionTimeoutMs;

    @Option(names = "--memory", paramLabel = "SIZE", description = "Memory this host offers VMs (default: all of it).")
    String memory;

    @Option(names = "--vcpus", description = "vCPUs this host offers VMs (default: 4 per core).")
    Integer vcpus;

    @Option(names = "--label", paramLabel = "KEY=VALUE", description = "A label of this host; repeatable.")
    List<String> labels = List.of();

    @Option(
            names = "--on-exit",
            paramLabel = "leave-guests|stop-guests",
            defaultValue = "leave-guests",
            description =
                    "What SIGTERM does to QEMU guests of a cluster agent: leave them running for the next agent "
                            + "process (an upgrade), or stop them (default: ${DEFAULT-VALUE}). Standalone agents always stop them.")
    String onExit;

    @Option(
            names = "--outage-hold-ms",
            defaultValue = "120000",
            description = "How long guests keep running when this agent has lost ZooKeeper and every coordinator "
                    + "confirms it cannot reach ZooKeeper either; 0 never holds (default: ${DEFAULT-VALUE}).")
    long outageHoldMs;

    @Option(
            names = "--incoming-idle-timeout-ms",
            defaultValue = "" + AgentConfig.DEFAULT_IDLE_TIMEOUT_MS,
            description = "An incoming migration that hears nothing from its source on any lane this long, while "
                    + "it waits for pages or device state, is discarded: its RAM, hypervisor and name are freed and "
                    + "the source keeps its VM. A source's --max-bandwidth must move 1 MiB within it "
                    + "(default: ${DEFAULT-VALUE}).")
    long incomingIdleTimeoutMs;

    @Option(
            names = "--max-incoming",
            defaultValue = "" + AgentConfig.DEFAULT_MAX_INCOMING,
            description = "Migrations this host receives at once; a prepare beyond it is refused and the source keeps "
                    + "its VM (default: ${DEFAULT-VALUE}).")
    int maxIncoming;

    @Option(
            names = "--reports-kept",
            defaultValue = "" + AgentConfig.DEFAULT_REPORTS_KEPT,
            description = "Finished outgoing migrations whose records (`ferry report`) this agent keeps, in DATA_DIR/"
                    + "migrations (default: ${DEFAULT-VALUE}).")
    int reportsKept;

    @Option(
            names = "--report-retention-days",
            defaultValue = "30",
            description = "Days a migration's record is kept (default: ${DEFAULT-VALUE}).")
    int reportRetentionDays;

    @Option(
            names = "--metrics-listen",
            paramLabel = "ADDR",
            description = "HOST:PORT to serve Prometheus metrics on, plain HTTP (GET /metrics, GET /healthz); port 0 "
                    + "picks one. Off when not given. Bind a management address: it carries VM and host names and "
                    + "asks for no credentials.")
    String metricsListen;

    @Option(
            names = "--announce-rounds",
            defaultValue = "5",
            description = "qemu driver: after a migrated guest resumes here, QEMU announces it on its network "
                    + "(announce-self: RARP or the guest's gratuitous ARP) this many times so bridges and switches "
                    + "forward to this host at once; 0: never (default: ${DEFAULT-VALUE}, QEMU's own).")
    int announceRounds;

    @Option(
            names = "--announce-initial-ms",
            defaultValue = "50",
            description = "Delay before the first announcement (default: ${DEFAULT-VALUE}).")
    long announceInitialMs;

    @Option(
            names = "--announce-step-ms",
            defaultValue = "100",
            description = "Each announcement comes this much later than the one before (default: ${DEFAULT-VALUE}).")
    long announceStepMs;

    @Option(
            names = "--announce-max-ms",
            defaultValue = "550",
            description = "Announcements at most this far apart (default: ${DEFAULT-VALUE}).")
    long announceMaxMs;

    @picocli.CommandLine.Mixin
    dev.ferry.cli.config.ConfigOption config = new dev.ferry.cli.config.ConfigOption();

    @picocli.CommandLine.Mixin
    LogFormatOption logFormat = new LogFormatOption();

    @picocli.CommandLine.Mixin
    TlsOptions tls;

    @Override
    public Integer call() throws Exception {
        logFormat.apply(hostId);
        config.logSource("agent");
        dev.ferry.hypervisor.qemu.QemuDriver.Announce announce;
        try {
            announce = new dev.ferry.hypervisor.qemu.QemuDriver.Announce(
                    java.time.Duration.ofMillis(announceInitialMs),
                    java.time.Duration.ofMillis(announceMaxMs),
                    announceRounds,
                    java.time.Duration.ofMillis(announceStepMs));
        } catch (IllegalArgumentException e) {
            throw new CliException("--announce-*: " + e.getMessage(), 2);
        }
        Endpoint endpoint;
        try {
            endpoint = Endpoint.parse(listen);
        } catch (IllegalArgumentException e) {
            throw new CliException("--listen: " + e.getMessage(), 2);
        }
        AgentConfig config = AgentConfig.of(hostId, endpoint, dataDir.toAbsolutePath());
        if (zk != null) {
            // A cluster member's endpoint goes into ZooKeeper for every other host to dial.
            config = config.withAdvertise(AdvertisedEndpoint.choose("agent", listen, advertise, singleMachine));
        } else if (advertise != null) {
            throw new CliException(
                    "--advertise is for cluster agents (with --zk): a standalone agent registers nowhere", 2);
        }
        if (ramDir != null) {
            config = config.withRamDir(ramDir.toAbsolutePath());
        }
        if (maxIncoming < 1) {
            throw new CliException("--max-incoming must be at least 1, got " + maxIncoming, 2);
        }
        config = config.withMaxIncoming(maxIncoming);
        if (incomingIdleTimeoutMs < MIN_IDLE_TIMEOUT_MS) {
            throw new CliException(
                    "--incoming-idle-timeout-ms must be at least " + MIN_IDLE_TIMEOUT_MS
                            + " (a shorter silence is a busy machine, not a lost source), got " + incomingIdleTimeoutMs,
                    2);
        }
        config = config.withIdleTimeout(java.time.Duration.ofMillis(incomingIdleTimeoutMs));
        if (reportsKept < 1 || reportRetentionDays < 1) {
            throw new CliException("--reports-kept and --report-retention-days must be at least 1", 2);
        }
        config = config.withReports(reportsKept, java.time.Duration.ofDays(reportRetentionDays));
        if (metricsListen != null) {
            config = config.withMetricsListen(MetricsListen.parse(metricsListen));
        }
        config = config.withTransport(tls.daemon("agent " + hostId, Role.AGENT, hostId));
        if (endpointFile != null && zk == null) {
            config = config.withEndpointFile(endpointFile.toAbsolutePath());
        }
        HypervisorDriver hypervisor = Drivers.create(
                driver, config.dataDir(), Drivers.storageRoots(storageRoots, config.dataDir()), qemuBinary, announce);
        CountDownLatch stopped = new CountDownLatch(1);
        if (zk == null) {
            Agent agent = new Agent(config, hypervisor, CommitProvider.local());
            Runtime.getRuntime()
                    .addShutdownHook(new Thread(
                            () -> {
                                agent.close();
                                stopped.countDown();
                            },
                            "ferry-agent-shutdown"));
            try {
                agent.start();
            } catch (java.io.IOException e) {
                agent.close();
                throw new CliException("agent " + hostId + " cannot start: " + e.getMessage());
            }
            stopped.await();
            return 0;
        }
        ZkClients clients;
        ClusterAgent.Capacity capacity;
        boolean leaveGuests;
        try {
            leaveGuests = switch (onExit) {
                case "leave-guests" -> true;
                case "stop-guests" -> false;
                default ->
                    throw new IllegalArgumentException(
                            "--on-exit must be leave-guests or stop-guests, got '" + onExit + "'");
            };
            if (outageHoldMs < 0) {
                throw new IllegalArgumentException("--outage-hold-ms must not be negative");
            }
            clients = ZkClients.of(
                    zk, clusterName, Duration.ofMillis(sessionTimeoutMs), tls.zooKeeper("agent " + hostId));
            ClusterAgent.Capacity machine = ClusterAgent.Capacity.ofThisMachine();
            capacity = new ClusterAgent.Capacity(
                    memory == null ? machine.memoryBytes() : Sizes.parseSize(memory),
                    vcpus == null ? machine.vcpus() : vcpus,
                    parseLabels(labels));
        } catch (IllegalArgumentException e) {
            throw new CliException(e.getMessage(), 2);
        }
        ClusterAgent agent;
        try {
            agent = ClusterAgent.start(
                    config, hypervisor, clients, capacity, Duration.ofSeconds(5), Duration.ofMillis(outageHoldMs));
        } catch (java.io.IOException e) {
            throw new CliException("agent " + hostId + " cannot start: " + e.getMessage());
        }
        Runtime.getRuntime()
                .addShutdownHook(new Thread(
                        () -> {
                            if (leaveGuests) {
                                agent.closeLeavingGuests();
                            } else {
                                agent.close();
                            }
                            stopped.countDown();
                        },
                        "ferry-agent-shutdown"));
        if (!agent.member().awaitMember(Duration.ofMillis(Math.max(60_000, 3 * sessionTimeoutMs)))) {
            throw new CliException("agent " + hostId + " could not join the cluster at " + zk);
        }
        if (endpointFile != null) {
            Path f = endpointFile.toAbsolutePath();
            Path tmp = f.resolveSibling(f.getFileName() + ".tmp");
            Files.writeString(tmp, agent.agent().endpointFileText(), StandardCharsets.UTF_8);
            Files.move(tmp, f, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        }
        stopped.await();
        return 0;
    }

    static Map<String, String> parseLabels(List<String> labels) {
        Map<String, String> out = new LinkedHashMap<>();
        for (String l : labels) {
            int eq = l.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("bad --label '" + l + "': write KEY=VALUE");
            }
            out.put(l.substring(0, eq), l.substring(eq + 1));
        }
        return out;
    }
}
