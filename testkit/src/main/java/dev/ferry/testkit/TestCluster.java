package dev.ferry.testkit;

import dev.ferry.agent.AgentConfig;
import dev.ferry.agent.cluster.ClusterAgent;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.cluster.coordinator.AgentActions;
import dev.ferry.cluster.coordinator.Coordinator;
import dev.ferry.cluster.coordinator.CoordinatorConfig;
import dev.ferry.cluster.coordinator.GrpcAgentActions;
import dev.ferry.cluster.coordinator.RestartGate;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.proto.coordinator.CreateVmRequest;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.HaPolicy;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.TestDirs;
import dev.ferry.testing.Timing;
import java.io.File;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.apache.curator.test.InstanceSpec;
import org.apache.curator.test.TestingServer;

/**
 * A whole cluster for one test: a real ZooKeeper server in this JVM (curator-test), coordinator
 * replicas, and agents (sim driver) either in this JVM (optionally behind a {@link TcpProxy} to
 * cut their ZooKeeper connection) or as processes of their own (to kill -9). Every guest start and
 * stop goes to one {@link RunLog}.
 */
public final class TestCluster implements AutoCloseable {
    public static final String NAME = "test";
    public static final long HOST_MEMORY = 4L << 30;
    public static final int HOST_VCPUS = 16;

    public final Path root;
    public final TestingServer zk;
    public final RunLog runLog;
    private final List<Coordinator> coordinators = new ArrayList<>();
    private final Map<String, ClusterAgent> agents = new LinkedHashMap<>();
    private final Map<String, TcpProxy> proxies = new LinkedHashMap<>();
    private final Map<String, Process> processes = new LinkedHashMap<>();
    private final List<CoordinatorClient> clients = new ArrayList<>();

    private TestCluster(Path root, TestingServer zk) {
        this.root = root;
        this.zk = zk;
        this.runLog = new RunLog(root.resolve("run.log"));
    }

    public static TestCluster start() throws Exception {
        Path root = TestDirs.ramDir("cluster");
        // A short tick so that sessions expire promptly; wide session bounds so that clients get what they ask.
        InstanceSpec spec = new InstanceSpec(
                root.resolve("zk").toFile(),
                -1,
                -1,
                -1,
                true,
                -1,
                100,
                0,
                Map.of("minSessionTimeout", "1000", "maxSessionTimeout", "60000"));
        return new TestCluster(root, new TestingServer(spec, true));
    }

    public ZkClients zkClients(Duration sessionTimeout) {
        return ZkClients.of(zk.getConnectString(), NAME, sessionTimeout);
    }

    public Coordinator coordinator(Duration failoverMargin) throws IOException {
        return coordinator(failoverMargin, null);
    }

    /** A coordinator replica; {@code agents} null means real gRPC calls. */
    public Coordinator coordinator(Duration failoverMargin, AgentActions agents) throws IOException {
        return coordinator(failoverMargin, agents, RestartGate.ALWAYS, UnaryOperator.identity());
    }

    /**
     * A coordinator replica whose restarts ask {@code gate}, with settings changed by {@code
     * settings}; {@code agents} null means real gRPC calls.
     */
    public Coordinator coordinator(
            Duration failoverMargin, AgentActions agents, RestartGate gate, UnaryOperator<CoordinatorConfig> settings)
            throws IOException {
        CoordinatorConfig config = settings.apply(CoordinatorConfig.of(
                        zkClients(Timing.seconds(3)), Endpoint.parse("127.0.0.1:0"), Timing.scaled(failoverMargin))
                .withReconcileInterval(Duration.ofMillis(500)));
        Coordinator c = new Coordinator(
                config,
                agents == null ? new GrpcAgentActions(config.transport(), config.agentDeadline()) : agents,
                gate);
        coordinators.add(c.start());
        return c;
    }

    public static AgentActions grpcAgents() {
        return new GrpcAgentActions(Transport.plaintext(), Duration.ofSeconds(60));
    }

    /**
     * An agent in this JVM; with {@code viaProxy} its ZooKeeper connection goes through a
     * {@link TcpProxy}. The session timeout scales with the timing multiplier like every other
     * timeout of the suite.
     */
    public ClusterAgent agent(String host, Duration sessionTimeout, boolean viaProxy) throws Exception {
        return agent(host, sessionTimeout, viaProxy, new SimDriver());
    }

    /** An agent in this JVM with its own {@code driver} (recording to the run log), as {@link #agent(String, Duration, boolean)}. */
    public ClusterAgent agent(String host, Duration sessionTimeout, boolean viaProxy, HypervisorDriver driver)
            throws Exception {
        sessionTimeout = Timing.scaled(sessionTimeout);
        String connect = zk.getConnectString();
        if (viaProxy) {
            TcpProxy proxy = new TcpProxy(new InetSocketAddress("127.0.0.1", zk.getPort()));
            proxies.put(host, proxy);
            connect = proxy.connectString();
        }
        PreCopySender.Timeouts t = PreCopySender.Timeouts.defaults().scaled(Timing.multiplier() / 4);
        AgentConfig config = new AgentConfig(
                host,
                Endpoint.parse("127.0.0.1:0"),
                root.resolve(host + "-data"),
                root.resolve(host + "-ram"),
                null,
                Transport.plaintext(),
                t,
                Timing.seconds(10));
        ClusterAgent a = ClusterAgent.start(
                config,
                new RecordingDriver(driver, host, runLog),
                ZkClients.of(connect, NAME, sessionTimeout),
                new ClusterAgent.Capacity(HOST_MEMORY, HOST_VCPUS, Map.of()),
                Duration.ofMillis(500));
        agents.put(host, a);
        if (!a.member().awaitMember(Timing.seconds(20))) {
            throw new AssertionError(host + " did not join the cluster");
        }
        return a;
    }

    public ClusterAgent agent(String host) {
        return agents.get(host);
    }

    public TcpProxy proxy(String host) {
        return proxies.get(host);
    }

    /** An agent as a process of its own (kill -9 takes the host and its guests). */
    public Process agentProcess(String host, Duration sessionTimeout) throws Exception {
        sessionTimeout = Timing.scaled(sessionTimeout);
        Path data = root.resolve(host + "-data");
        Files.createDirectories(data);
        Path endpointFile = data.resolve("endpoint");
        Files.deleteIfExists(endpointFile);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(
                java,
                "--enable-native-access=ALL-UNNAMED",
                "-XX:+UseSerialGC",
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                System.getProperty("java.class.path"),
                AgentProcess.class.getName(),
                "host=" + host,
                "zk=" + zk.getConnectString(),
                "cluster=" + NAME,
                "session-ms=" + sessionTimeout.toMillis(),
                "data=" + data,
                "ram=" + root.resolve(host + "-ram"),
                "endpoint-file=" + endpointFile,
                "run-log=" + runLog.file(),
                "memory=" + HOST_MEMORY,
                "vcpus=" + HOST_VCPUS));
        Process p = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(
                        root.resolve(host + ".log").toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .start();
        processes.put(host, p);
        return p;
    }

    /**
     * A coordinator replica as a process of its own (kill -9 leaves its session to expire). With
     * {@code holdRestartsFile}, its restarts stop before the agent call (see {@link CoordinatorProcess}).
     * Returns its API endpoint once it serves.
     */
    public String coordinatorProcess(String name, Duration failoverMargin, Path holdRestartsFile) throws Exception {
        return coordinatorProcess(
                name,
                CoordinatorProcess.class,
                failoverMargin,
                holdRestartsFile == null ? List.of() : List.of("hold-restarts-file=" + holdRestartsFile));
    }

    /**
     * A coordinator replica run by {@code main} (a class that takes CoordinatorProcess's arguments,
     * plus {@code extra}) in a process of its own. Returns its API endpoint once it serves.
     */
    public String coordinatorProcess(String name, Class<?> main, Duration failoverMargin, List<String> extra)
            throws Exception {
        Path endpointFile = root.resolve(name + ".endpoint");
        Files.deleteIfExists(endpointFile);
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(
                java,
                "-XX:+UseSerialGC",
                "-Xmx256m",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                System.getProperty("java.class.path"),
                main.getName(),
                "zk=" + zk.getConnectString(),
                "cluster=" + NAME,
                "session-ms=" + Timing.seconds(3).toMillis(),
                "margin-ms=" + Timing.scaled(failoverMargin).toMillis(),
                "endpoint-file=" + endpointFile));
        cmd.addAll(extra);
        Process p = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(
                        root.resolve(name + ".log").toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .start();
        processes.put(name, p);
        Timing.await(
                name + " to serve (log: " + root.resolve(name + ".log") + ")",
                Duration.ofSeconds(60),
                () -> Files.exists(endpointFile) || !p.isAlive());
        if (!p.isAlive()) {
            throw new AssertionError(name + " exited: see " + root.resolve(name + ".log"));
        }
        return Files.readString(endpointFile).trim();
    }

    /**
     * Sends {@code signal} (STOP, CONT, ...) to a process this cluster started: SIGSTOP freezes a
     * replica as a long GC pause or an overloaded host would, sockets open and session unattended.
     */
    public void signal(String name, String signal) throws Exception {
        Process p = processes.get(name);
        Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(p.pid()))
                .redirectErrorStream(true)
                .start();
        if (!kill.waitFor(10, TimeUnit.SECONDS) || kill.exitValue() != 0) {
            throw new AssertionError("kill -" + signal + " " + name + " failed");
        }
    }

    /** kill -9 of a process this cluster started (no run-log bookkeeping: for coordinators). */
    public void killProcess(String name) throws Exception {
        Process p = processes.get(name);
        p.destroyForcibly();
        if (!p.waitFor(20, TimeUnit.SECONDS)) {
            throw new AssertionError(name + " did not die");
        }
    }

    /** Waits for every process agent to have joined. */
    public void awaitProcesses() {
        for (var e : processes.entrySet()) {
            if (!Files.exists(root.resolve(e.getKey() + "-data"))) {
                continue; // not an agent
            }
            Path f = root.resolve(e.getKey() + "-data").resolve("endpoint");
            Timing.await(
                    e.getKey() + " to join (log: " + root.resolve(e.getKey() + ".log") + ")",
                    Duration.ofSeconds(60),
                    () -> Files.exists(f) || !e.getValue().isAlive());
            if (!e.getValue().isAlive()) {
                throw new AssertionError(e.getKey() + " exited: see " + root.resolve(e.getKey() + ".log"));
            }
        }
    }

    /**
     * kill -9 of a host: the agent process and (sim driver) its guests die together. Once it is
     * dead, the run log closes every interval that host had open.
     */
    public void kill(String host) throws Exception {
        Process p = processes.get(host);
        p.destroyForcibly();
        if (!p.waitFor(20, TimeUnit.SECONDS)) {
            throw new AssertionError(host + " did not die");
        }
        long now = System.nanoTime();
        for (RunLog.Interval i : runLog.intervals()) {
            if (i.host().equals(host) && i.end() >= now) {
                runLog.record(host, i.vm(), RunLog.Event.END);
            }
        }
    }

    public CoordinatorClient client() {
        CoordinatorClient c = new CoordinatorClient(
                Transport.plaintext(),
                CoordinatorClient.zookeeper(zkClients(Duration.ofSeconds(5))),
                Duration.ofSeconds(60),
                Timing.seconds(30));
        clients.add(c);
        return c;
    }

    public static VmSpec spec(String name, long memory, long dirtyPagesPerSecond) {
        return VmSpec.newBuilder()
                .setSchemaVersion(1)
                .setName(name)
                .setMemoryBytes(memory)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder()
                        .setDirtyRatePagesPerSec(dirtyPagesPerSecond)
                        .setWorkingSetBytes(memory / 2)
                        .setHotSetBytes(memory / 16)
                        .setHotPercent(50)
                        .setPattern(Pattern.PATTERN_COMPRESSIBLE))
                .setHa(HaPolicy.newBuilder().setMaxRestartAttempts(3))
                .build();
    }

    public VmView create(CoordinatorClient c, VmSpec spec, String host) {
        return c.createVm(CreateVmRequest.newBuilder()
                .setSpec(spec)
                .setStart(true)
                .setHost(host == null ? "" : host)
                .setRequestId(UUID.randomUUID().toString())
                .build());
    }

    @Override
    public void close() throws Exception {
        for (CoordinatorClient c : clients) {
            c.close();
        }
        for (Coordinator c : coordinators) {
            c.close();
        }
        for (Process p : processes.values()) {
            // A stopped process dies of SIGKILL too; CONT first anyway so that nothing lingers frozen.
            new ProcessBuilder("kill", "-CONT", Long.toString(p.pid())).start().waitFor(10, TimeUnit.SECONDS);
            p.destroyForcibly();
            p.waitFor(10, TimeUnit.SECONDS);
        }
        for (ClusterAgent a : agents.values()) {
            a.close();
        }
        for (TcpProxy p : proxies.values()) {
            p.close();
        }
        zk.close();
        TestDirs.deleteTree(root);
    }
}
