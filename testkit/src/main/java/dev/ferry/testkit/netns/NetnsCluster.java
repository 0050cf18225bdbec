package dev.ferry.testkit.netns;

import dev.ferry.cli.DaemonJvm;
import dev.ferry.cluster.store.ZkTls;
import dev.ferry.pki.CertificateAuthority;
import dev.ferry.pki.CredentialFiles;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.RevocationList;
import dev.ferry.pki.Role;
import dev.ferry.testing.TestDirs;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Collectors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Ferry cluster of real hosts on one machine: every daemon in a Linux network namespace of its
 * own, with its own address, plugged into one bridge. Needs root and iproute2.
 *
 * <p>What {@link Builder#start()} builds, for a cluster with id {@code fkXXXX} (random, so that
 * concurrent runs on one machine never collide; every namespace is {@code fkXXXX-SUFFIX}, at most
 * 15 characters):
 *
 * <ul>
 *   <li>a switch namespace {@code fkXXXX-sw} holding bridge {@code br0}; each host's veth peer is a
 *       port of it, named {@code v-SUFFIX};
 *   <li>one namespace per host with {@code lo} up and {@code eth0} at {@code 198.18.1.N/24}
 *       (198.18.0.0/15 is reserved for benchmarking; namespaces are isolated, so every cluster uses
 *       the same plan): the control host {@code .2} ({@code -ctl}), ZooKeeper server i {@code .1i}
 *       ({@code -z<i>}), coordinator i {@code .2i} ({@code -c<i>}), agent i {@code .(100+i)}
 *       ({@code -h<i>}). There is no default route: nothing leaves the cluster's namespaces;
 *   <li>a ZooKeeper ensemble: each server a JVM of its own ({@code QuorumPeerMain} with a generated
 *       {@code zoo.cfg}, data directory and {@code myid}) on port 2181 of its host;
 *   <li>coordinator replicas, {@code ferry coordinator --zk ENSEMBLE --listen ADDR:7100}, and
 *       agents, {@code ferry agent --zk ENSEMBLE --listen ADDR:7070 --host-id ...} with the sim or
 *       the qemu driver: the commands an operator runs, each in its own JVM with the daemon JVM
 *       options of {@link DaemonJvm} (see {@link Launcher}).
 * </ul>
 *
 * <p>The test drives it like an operator: {@link #cli(String...)} runs {@code ferry ...} in the
 * control namespace against the ensemble and returns exit code, stdout and stderr. Every daemon
 * is a {@link Daemon} handle (pid, kill -9, SIGSTOP/SIGCONT, restart with the same arguments and
 * data, log file); every host a {@link NetnsHost} (namespace, address, interface names, a command
 * run inside it) for nemeses to act on.
 *
 * <p>{@link #close()} kills every process in the cluster's namespaces (daemons and the QEMUs the
 * agents started), unmounts the kit's tmpfs mounts, deletes the namespaces (veths and bridge go
 * with them) and the scratch directory; it is idempotent and also runs from a JVM shutdown hook.
 * What a JVM killed outright leaves behind is removed by the next cluster's start
 * ({@link StaleNamespaces#sweep()}). Set {@code -Dferry.testkit.keep=true} to keep the scratch
 * directory (logs) after close.
 *
 * <pre>{@code
 * try (NetnsCluster c = NetnsCluster.builder()
 *         .zookeepers(3).coordinators(2)
 *         .agent(AgentSpec.sim("host-1")).agent(AgentSpec.qemu("host-2"))
 *         .sessionTimeout(Duration.ofSeconds(4))
 *         .start()) {
 *     c.cli("vm", "create", "web", "--memory", "64M", "--host", "host-1").ok();
 *     c.zookeeper(1).kill();
 *     c.agent("host-2").freeze();
 * }
 * }</pre>
 */
public final class NetnsCluster implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NetnsCluster.class);

    public static final String SUBNET = "198.18.1";
    public static final int PREFIX_LENGTH = 24;
    public static final int ZK_CLIENT_PORT = 2181;
    public static final int ZK_QUORUM_PORT = 2888;
    public static final int ZK_ELECTION_PORT = 3888;
    public static final int COORDINATOR_PORT = 7100;
    public static final int AGENT_PORT = 7070;
    public static final String BRIDGE = "br0";
    /** The guest segment's subnet (with {@link Builder#guestSegment}): guests take addresses from .10 up. */
    public static final String GUEST_SUBNET = "198.18.2";

    public static final String GUEST_CLIENT_ADDRESS = GUEST_SUBNET + ".2";
    /** In each agent host: the veth that joins its guest bridge to the guest switch. */
    public static final String GUEST_UPLINK = "guplink0";

    /** LATENT until {@link Builder#start()} begins, STARTED once everything serves, CLOSED for good. */
    public enum State {
        LATENT,
        STARTING,
        STARTED,
        CLOSED
    }

    private final AtomicReference<State> state = new AtomicReference<>(State.LATENT);
    private final Builder settings;
    private final String id;
    private final Path root;
    private final String switchNamespace;
    private final NetnsHost control;
    private ControlShell shell;
    private final List<Daemon> zookeepers = new ArrayList<>();
    private final List<Daemon> coordinators = new ArrayList<>();
    private final Map<String, AgentDaemon> agents = new LinkedHashMap<>();
    private final List<NetnsHost> hosts = new ArrayList<>();
    private NetnsHost guestClient;
    private final Thread shutdownHook;

    private NetnsCluster(Builder settings, String id, Path root) {
        this.settings = settings;
        this.id = id;
        this.root = root;
        this.switchNamespace = id + "-sw";
        this.control = new NetnsHost("control", id + "-ctl", SUBNET + ".2", switchNamespace, "v-ctl");
        this.shutdownHook = new Thread(this::closeQuietly, "netns-cluster-" + id + "-cleanup");
    }

    public static Builder builder() {
        return new Builder();
    }

    /**
     * Null when this machine can run a NetnsCluster (root, {@code ip}, network namespaces);
     * otherwise why not, for a test to skip or fail with.
     */
    public static String unavailableReason() {
        if (!"root".equals(System.getProperty("user.name"))) {
            return "network namespaces need root (running as " + System.getProperty("user.name") + ")";
        }
        CommandResult ip = Commands.run(List.of("ip", "netns", "list"));
        if (!ip.ok()) {
            return "iproute2's `ip netns` does not work here: " + ip.describe();
        }
        return null;
    }

    /** Settings of a cluster; {@link #start()} builds it. */
    public static final class Builder {
        private int zookeepers = 3;
        private int coordinators = 2;
        private final List<AgentSpec> agentSpecs = new ArrayList<>();
        private Duration sessionTimeout = Duration.ofSeconds(4);
        private Duration failoverMargin;
        private String clusterName = "netns";
        private Launcher launcher = Launcher.classpath();
        private final List<String> jvmOptions = new ArrayList<>(Launcher.TEST_JVM_OPTIONS);
        private final List<String> coordinatorArgs = new ArrayList<>();
        private Duration startTimeout = Duration.ofSeconds(120);
        private int zkTickMs = 200;
        private String guestBridge;

        private Builder() {}

        /**
         * A guest network besides the cluster's own: before the agents start, every agent host gets
         * a Linux bridge named {@code bridge} (where the agents put their guests' taps), and all of
         * them are joined into one L2 segment through a second switch (as hypervisors' VM bridges
         * are on one VLAN), on which a client namespace sits at {@link #GUEST_CLIENT_ADDRESS}; see
         * {@link NetnsCluster#guestClient()}.
         */
        public Builder guestSegment(String bridge) {
            if (!bridge.matches("[A-Za-z0-9._-]{1,15}")) {
                throw new IllegalArgumentException("not an interface name: " + bridge);
            }
            guestBridge = bridge;
            return this;
        }

        /** Servers in the ZooKeeper ensemble (1-7; default 3). */
        public Builder zookeepers(int n) {
            if (n < 1 || n > 7) {
                throw new IllegalArgumentException("zookeepers must be 1-7, got " + n);
            }
            zookeepers = n;
            return this;
        }

        /** Coordinator replicas (0-9; default 2). */
        public Builder coordinators(int n) {
            if (n < 0 || n > 9) {
                throw new IllegalArgumentException("coordinators must be 0-9, got " + n);
            }
            coordinators = n;
            return this;
        }

        public Builder agent(AgentSpec spec) {
            if (agentSpecs.stream().anyMatch(a -> a.hostId().equals(spec.hostId()))) {
                throw new IllegalArgumentException("two agents named " + spec.hostId());
            }
            if (agentSpecs.size() == 99) {
                throw new IllegalArgumentException("at most 99 agents");
            }
            agentSpecs.add(spec);
            return this;
        }

        /** A sim-driver agent. */
        public Builder agent(String hostId) {
            return agent(AgentSpec.sim(hostId));
        }

        /** The agents' ZooKeeper session timeout; the coordinators' --agent-session-timeout-ms (default 4 s). */
        public Builder sessionTimeout(Duration d) {
            if (d.toMillis() < 1000) {
                throw new IllegalArgumentException("session timeout must be at least 1 s");
            }
            sessionTimeout = d;
            return this;
        }

        /** The coordinators' --failover-margin-ms (default: theirs, from the session timeout). */
        public Builder failoverMargin(Duration d) {
            failoverMargin = d;
            return this;
        }

        /** The cluster's name in ZooKeeper (default {@code netns}). */
        public Builder clusterName(String name) {
            clusterName = name;
            return this;
        }

        /** How daemons and CLI commands are run (default: {@link Launcher#classpath()}). */
        public Builder launcher(Launcher l) {
            launcher = l;
            return this;
        }

        /** JVM options added after the daemon defaults (later ones win), for every daemon. */
        public Builder jvmOptions(String... options) {
            jvmOptions.addAll(List.of(options));
            return this;
        }

        /** More {@code ferry coordinator} arguments for every replica. */
        public Builder coordinatorArgs(String... args) {
            coordinatorArgs.addAll(List.of(args));
            return this;
        }

        /** How long {@link #start()} may take before it fails (default 120 s; scale it with the timing multiplier). */
        public Builder startTimeout(Duration d) {
            startTimeout = d;
            return this;
        }

        /** ZooKeeper's tickTime in ms (default 200; sessions range from 2 to 60 s whatever it is). */
        public Builder zkTickMs(int ms) {
            zkTickMs = ms;
            return this;
        }

        /** Builds and starts the cluster; on failure removes whatever it had built and rethrows. */
        public NetnsCluster start() {
            String why = unavailableReason();
            if (why != null) {
                throw new IllegalStateException(why);
            }
            StaleNamespaces.sweep();
            NetnsCluster c;
            try {
                c = new NetnsCluster(this, newId(), TestDirs.ramDir("netns"));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            try {
                c.startAll();
                return c;
            } catch (RuntimeException | Error e) {
                log.error("netns cluster {} failed to start; logs were in {}", c.id, c.root);
                c.closeQuietly();
                throw e;
            }
        }
    }

    private static String newId() {
        SecureRandom r = new SecureRandom();
        String alphabet = "0123456789abcdefghijklmnopqrstuvwxyz";
        while (true) {
            StringBuilder sb = new StringBuilder("fk");
            for (int i = 0; i < 4; i++) {
                sb.append(alphabet.charAt(r.nextInt(alphabet.length())));
            }
            String id = sb.toString();
            if (StaleNamespaces.namespacesOf(id).isEmpty() && !Files.exists(StaleNamespaces.OWNERS.resolve(id))) {
                return id;
            }
        }
    }

    private void startAll() {
        if (!state.compareAndSet(State.LATENT, State.STARTING)) {
            throw new IllegalStateException("already started");
        }
        long deadline = System.nanoTime() + settings.startTimeout.toNanos();
        try {
            StaleNamespaces.me(root).write(id);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the owner file of " + id, e);
        }
        Runtime.getRuntime().addShutdownHook(shutdownHook);
        // The switch: a bridge in a namespace of its own, so that the machine's own tables never see the traffic.
        ip("netns", "add", switchNamespace);
        ip("-n", switchNamespace, "link", "set", "lo", "up");
        ip("-n", switchNamespace, "link", "add", BRIDGE, "type", "bridge");
        ip("-n", switchNamespace, "link", "set", BRIDGE, "up");
        plug(control);
        for (int i = 1; i <= settings.zookeepers; i++) {
            plug(new NetnsHost("zk-" + i, id + "-z" + i, SUBNET + "." + (10 + i), switchNamespace, "v-z" + i));
        }
        for (int i = 1; i <= settings.coordinators; i++) {
            plug(new NetnsHost("coordinator-" + i, id + "-c" + i, SUBNET + "." + (20 + i), switchNamespace, "v-c" + i));
        }
        int a = 0;
        for (AgentSpec spec : settings.agentSpecs) {
            a++;
            plug(new NetnsHost(spec.hostId(), id + "-h" + a, SUBNET + "." + (100 + a), switchNamespace, "v-h" + a));
        }
        if (settings.guestBridge != null) {
            createGuestSegment(settings.guestBridge);
        }
        createPki();
        createZooKeepers();
        zookeepers.forEach(Daemon::start);
        awaitZooKeeperQuorum(remaining(deadline));
        createCoordinators();
        coordinators.forEach(Daemon::start);
        for (Daemon c : coordinators) {
            c.awaitReady(remaining(deadline));
        }
        createAgents();
        agents.values().forEach(Daemon::start);
        for (Daemon d : agents.values()) {
            d.awaitReady(remaining(deadline));
        }
        state.set(State.STARTED);
        log.info(
                "netns cluster {} started: {} ZooKeeper, {} coordinators, agents {}; files in {}",
                id,
                zookeepers.size(),
                coordinators.size(),
                agents.keySet(),
                root);
    }

    private static Duration remaining(long deadline) {
        return Duration.ofNanos(Math.max(1, deadline - System.nanoTime()));
    }

    /**
     * The guest segment: switch namespace {@code ID-gs} with bridge {@code gsw0}; in each agent
     * host a bridge {@code bridge} (no address: the host only switches its guests' frames) with an
     * uplink veth into the switch; a client namespace {@code ID-gc} on the switch. All of it goes
     * with the cluster's namespaces.
     */
    private void createGuestSegment(String bridge) {
        String sw = id + "-gs";
        ip("netns", "add", sw);
        ip("-n", sw, "link", "set", "lo", "up");
        ip("-n", sw, "link", "add", "gsw0", "type", "bridge");
        ip("-n", sw, "link", "set", "gsw0", "up");
        int a = 0;
        for (AgentSpec spec : settings.agentSpecs) {
            a++;
            String ns = id + "-h" + a;
            ip("-n", ns, "link", "add", bridge, "type", "bridge");
            ip("-n", ns, "link", "set", bridge, "up");
            ip("-n", sw, "link", "add", "g-h" + a, "type", "veth", "peer", "name", GUEST_UPLINK, "netns", ns);
            ip("-n", sw, "link", "set", "g-h" + a, "master", "gsw0", "up");
            ip("-n", ns, "link", "set", GUEST_UPLINK, "master", bridge, "up");
        }
        guestClient = new NetnsHost("guest-client", id + "-gc", GUEST_CLIENT_ADDRESS, sw, "g-cl");
        ip("netns", "add", guestClient.namespace());
        ip("-n", guestClient.namespace(), "link", "set", "lo", "up");
        ip(
                "-n",
                sw,
                "link",
                "add",
                guestClient.switchInterfaceName(),
                "type",
                "veth",
                "peer",
                "name",
                NetnsHost.INTERFACE,
                "netns",
                guestClient.namespace());
        ip("-n", sw, "link", "set", guestClient.switchInterfaceName(), "master", "gsw0", "up");
        ip(
                "-n",
                guestClient.namespace(),
                "addr",
                "add",
                GUEST_CLIENT_ADDRESS + "/" + PREFIX_LENGTH,
                "dev",
                NetnsHost.INTERFACE);
        ip("-n", guestClient.namespace(), "link", "set", NetnsHost.INTERFACE, "up");
    }

    /** Creates {@code h}'s namespace and its veth into the bridge; addresses it; no route out. */
    private void plug(NetnsHost h) {
        ip("netns", "add", h.namespace());
        ip("-n", h.namespace(), "link", "set", "lo", "up");
        // Created in the switch namespace with the peer placed straight into the host's: the
        // machine's own namespace never holds either end, so names cannot collide with other runs.
        ip(
                "-n",
                switchNamespace,
                "link",
                "add",
                h.switchInterfaceName(),
                "type",
                "veth",
                "peer",
                "name",
                NetnsHost.INTERFACE,
                "netns",
                h.namespace());
        ip("-n", switchNamespace, "link", "set", h.switchInterfaceName(), "master", BRIDGE, "up");
        ip("-n", h.namespace(), "addr", "add", h.address() + "/" + PREFIX_LENGTH, "dev", NetnsHost.INTERFACE);
        ip("-n", h.namespace(), "link", "set", NetnsHost.INTERFACE, "up");
        hosts.add(h);
    }

    private static void ip(String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add("ip");
        cmd.addAll(List.of(args));
        Commands.check(cmd);
    }

    private NetnsHost host(String name) {
        return hosts.stream()
                .filter(h -> h.name().equals(name))
                .findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no host " + name + " in " + hostNames()));
    }

    private String hostNames() {
        return hosts.stream().map(NetnsHost::name).collect(Collectors.joining(", "));
    }

    // ---- ZooKeeper

    private void createZooKeepers() {
        StringBuilder servers = new StringBuilder();
        for (int i = 1; i <= settings.zookeepers; i++) {
            String addr = host("zk-" + i).address();
            servers.append("server.")
                    .append(i)
                    .append('=')
                    .append(addr)
                    .append(':')
                    .append(ZK_QUORUM_PORT)
                    .append(':')
                    .append(ZK_ELECTION_PORT)
                    .append('\n');
        }
        Path logback = root.resolve("zk-logback.xml");
        write(logback, """
                <configuration>
                  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">
                    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{30} - %msg%n</pattern></encoder>
                  </appender>
                  <logger name="org.apache.zookeeper.server.quorum.QuorumPeer" level="INFO"/>
                  <root level="WARN"><appender-ref ref="OUT"/></root>
                </configuration>
                """);
        for (int i = 1; i <= settings.zookeepers; i++) {
            NetnsHost h = host("zk-" + i);
            Path dir = root.resolve("zk-" + i);
            Path data = dir.resolve("data");
            mkdirs(data);
            write(data.resolve("myid"), i + "\n");
            Path cfg = dir.resolve("zoo.cfg");
            write(
                    cfg,
                    "tickTime=" + settings.zkTickMs + "\n"
                            + "initLimit=" + Math.max(10, 10_000 / settings.zkTickMs) + "\n"
                            + "syncLimit=" + Math.max(5, 2_000 / settings.zkTickMs) + "\n"
                            + "dataDir=" + data + "\n"
                            // TLS only (no plaintext port): client certificates of the
                            // cluster CA, clients named by role; see ZkTls.serverConfig.
                            + "secureClientPortAddress=" + h.address() + "\n"
                            + "secureClientPort=" + ZK_CLIENT_PORT + "\n"
                            + zkTlsConfig(i, dir)
                            + "minSessionTimeout=1000\n"
                            + "maxSessionTimeout=60000\n"
                            + "4lw.commands.whitelist=srvr,ruok,stat,mntr\n"
                            + "admin.enableServer=false\n"
                            + "reconfigEnabled=false\n"
                            + "standaloneEnabled=" + (settings.zookeepers == 1) + "\n"
                            + "autopurge.purgeInterval=0\n"
                            + servers);
            List<String> cmd = new ArrayList<>(settings.launcher.java());
            cmd.addAll(List.of("-XX:+UseSerialGC", "-Xms32m", "-Xmx256m", "-XX:TieredStopAtLevel=1"));
            cmd.add("-Dlogback.configurationFile=" + logback);
            cmd.add("-Dzookeeper.admin.enableServer=false");
            cmd.addAll(List.of("-cp", settings.launcher.classPath()));
            cmd.add("org.apache.zookeeper.server.quorum.QuorumPeerMain");
            cmd.add(cfg.toString());
            int index = i;
            zookeepers.add(new Daemon(
                    "zk-" + i,
                    Daemon.Role.ZOOKEEPER,
                    h,
                    cmd,
                    Map.of(),
                    root.resolve("zk-" + i + ".log"),
                    d -> !zkMode(index).equals("down"),
                    () -> {}));
        }
    }

    /**
     * Server {@code i}'s TLS lines of zoo.cfg: its certificate (issued by {@link #createPki} for
     * its address, which clients check) joined with its key into the one PEM file ZooKeeper reads.
     * Quorum traffic between the servers stays plaintext (ZooKeeper's quorum TLS is not set up).
     * Each server honours the cluster's revocation list (pki/crl.pem, where `ferry pki revoke
     * --dir pki` writes it and every daemon of the cluster reads it), re-read when it changes.
     */
    private String zkTlsConfig(int i, Path dir) {
        Path pki = root.resolve("pki");
        Path keyStore = dir.resolve("zk.pem");
        try {
            Credentials c = Credentials.load(
                    pki.resolve("z").resolve("zk-" + i + ".crt"),
                    pki.resolve("z").resolve("zk-" + i + ".key"),
                    pki.resolve("z").resolve(CertificateAuthority.CA_CERT),
                    Clock.systemUTC());
            ZkTls.writeKeyStore(c, keyStore);
            StringBuilder b = new StringBuilder();
            ZkTls.serverConfig(keyStore, c.ca(), pki.resolve(RevocationList.FILE))
                    .forEach((k, v) -> b.append(k).append('=').append(v).append('\n'));
            return b.toString();
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** The ensemble's connect string: every server's ADDR:2181. */
    public String zkConnect() {
        return zookeepers.stream()
                .map(d -> d.host().address() + ":" + ZK_CLIENT_PORT)
                .collect(Collectors.joining(","));
    }

    /**
     * What ZooKeeper server {@code i} (1-based) says it is, asked from the control host with the
     * {@code srvr} four-letter word: {@code leader}, {@code follower}, {@code standalone},
     * {@code not serving} (up, without a quorum) or {@code down} (no answer within 3 s).
     */
    public String zkMode(int i) {
        Daemon d = zookeeper(i);
        // The client port is TLS with client certificates only: ask over TLS, as the operator.
        Path o = root.resolve("pki").resolve("o");
        CommandResult r = control.exec(
                Duration.ofSeconds(5),
                List.of(
                        "timeout",
                        "3",
                        "bash",
                        "-c",
                        "printf srvr | openssl s_client -quiet -ign_eof -tls1_3 -connect "
                                + d.host().address() + ":"
                                + ZK_CLIENT_PORT + " -cert " + o.resolve("operator.crt") + " -key "
                                + o.resolve("operator.key") + " -CAfile " + o.resolve(CertificateAuthority.CA_CERT)
                                + " 2>/dev/null"));
        String out = r.stdout();
        for (String line : out.split("\n")) {
            if (line.startsWith("Mode: ")) {
                return line.substring("Mode: ".length()).strip();
            }
        }
        if (out.contains("not currently serving")) {
            return "not serving";
        }
        return "down";
    }

    /** Waits until every running ZooKeeper server is a leader or follower of one quorum. */
    public void awaitZooKeeperQuorum(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            List<String> modes = new ArrayList<>();
            boolean ok = true;
            for (int i = 1; i <= zookeepers.size(); i++) {
                Daemon d = zookeeper(i);
                if (!d.isAlive()) {
                    modes.add(d.name() + "=dead");
                    continue;
                }
                String m = zkMode(i);
                modes.add(d.name() + "=" + m);
                ok &= m.equals("leader") || m.equals("follower") || m.equals("standalone");
            }
            if (ok) {
                return;
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("ZooKeeper ensemble not serving after " + timeout.toMillis() + " ms: "
                        + modes + "; logs in " + root);
            }
            Daemon.sleep(200);
        }
    }

    /** The 1-based index of the ZooKeeper server that leads now, if any answers as leader. */
    public Optional<Integer> zkLeader() {
        for (int i = 1; i <= zookeepers.size(); i++) {
            if (zookeeper(i).isAlive() && zkMode(i).equals("leader")) {
                return Optional.of(i);
            }
        }
        return Optional.empty();
    }

    // ---- certificates

    /**
     * The cluster's CA and a certificate for every coordinator, agent and the operator, as an
     * operator would make them with `ferry pki`: every daemon and command of this cluster speaks
     * mutual TLS, so the chaos suite exercises the transport production runs.
     */
    private void createPki() {
        Path pki = root.resolve("pki");
        Clock utc = Clock.systemUTC();
        CertificateAuthority ca = CertificateAuthority.create(pki, settings.clusterName, Duration.ofDays(30), utc);
        for (int i = 1; i <= settings.coordinators; i++) {
            ca.issue(
                    "coordinator-" + i,
                    Role.COORDINATOR,
                    Duration.ofDays(7),
                    List.of(),
                    List.of(),
                    pki.resolve("c"),
                    utc);
        }
        for (AgentSpec spec : settings.agentSpecs) {
            ca.issue(spec.hostId(), Role.AGENT, Duration.ofDays(7), List.of(), List.of(), pki.resolve("a"), utc);
        }
        ca.issue("operator", Role.OPERATOR, Duration.ofDays(7), List.of(), List.of(), pki.resolve("o"), utc);
        for (int i = 1; i <= settings.zookeepers; i++) {
            // Clients check that a ZooKeeper server's certificate names the address they dial.
            try {
                ca.issue(
                        "zk-" + i,
                        Role.ZOOKEEPER,
                        Duration.ofDays(7),
                        List.of(),
                        List.of(java.net.InetAddress.getByName(host("zk-" + i).address())),
                        pki.resolve("z"),
                        utc);
            } catch (java.net.UnknownHostException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    /** The TLS flags of {@code name}'s certificate in pki/{@code sub}, with the cluster's revocation list. */
    private List<String> tlsArgs(String sub, String name) {
        return files(sub, name).flags();
    }

    private CredentialFiles files(String sub, String name) {
        Path pki = root.resolve("pki");
        return CredentialFiles.in(pki.resolve(sub), name, pki.resolve(RevocationList.FILE));
    }

    /**
     * Certificate, key and CA certificate of {@code name} in pki/{@code sub} ("c" coordinators, "a"
     * agents, "o" the operator): for tools a test runs on the control host that talk to the
     * cluster's ZooKeeper or daemons themselves.
     */
    public List<Path> credentialFiles(String sub, String name) {
        CredentialFiles f = files(sub, name);
        return List.of(f.certificate(), f.key(), f.ca());
    }

    // ---- coordinators

    private void createCoordinators() {
        for (int i = 1; i <= settings.coordinators; i++) {
            NetnsHost h = host("coordinator-" + i);
            Path endpointFile = root.resolve("coordinator-" + i + ".endpoint");
            List<String> cmd = new ArrayList<>(settings.launcher.daemon(DaemonJvm.COORDINATOR, settings.jvmOptions));
            cmd.addAll(List.of(
                    "coordinator",
                    "--zk",
                    zkConnect(),
                    "--cluster-name",
                    settings.clusterName,
                    "--listen",
                    h.address() + ":" + COORDINATOR_PORT,
                    "--agent-session-timeout-ms",
                    Long.toString(settings.sessionTimeout.toMillis()),
                    "--endpoint-file",
                    endpointFile.toString()));
            cmd.addAll(tlsArgs("c", "coordinator-" + i));
            if (settings.failoverMargin != null) {
                cmd.addAll(List.of("--failover-margin-ms", Long.toString(settings.failoverMargin.toMillis())));
            }
            cmd.addAll(settings.coordinatorArgs);
            coordinators.add(new Daemon(
                    "coordinator-" + i,
                    Daemon.Role.COORDINATOR,
                    h,
                    cmd,
                    Map.of(),
                    root.resolve("coordinator-" + i + ".log"),
                    d -> Files.exists(endpointFile),
                    () -> deleteIfExists(endpointFile)));
        }
    }

    // ---- agents

    private void createAgents() {
        for (AgentSpec spec : settings.agentSpecs) {
            NetnsHost h = host(spec.hostId());
            Path dir = root.resolve("agent-" + spec.hostId());
            Path data = dir.resolve("data");
            Path ram = dir.resolve("ram");
            mkdirs(data);
            mkdirs(ram);
            if (spec.ramTmpfsBytes() > 0) {
                Commands.check(List.of(
                        "mount",
                        "-t",
                        "tmpfs",
                        "-o",
                        "size=" + spec.ramTmpfsBytes() + ",mode=0755",
                        "tmpfs",
                        ram.toString()));
            }
            Path endpointFile = dir.resolve("endpoint");
            Map<String, String> env = new LinkedHashMap<>();
            Path clock = null;
            if (spec.faketime()) {
                if (!Files.isRegularFile(AgentDaemon.LIBFAKETIME)) {
                    throw new IllegalStateException(
                            AgentDaemon.LIBFAKETIME + " is missing (Debian: apt-get install faketime)");
                }
                clock = dir.resolve("faketime");
                AgentDaemon.writeClock(clock, Duration.ZERO);
                // The agent JVM only: its QEMUs start with LD_PRELOAD replaced by Ferry's own
                // libraries (QemuCommand.environmentToRemove), so they keep the real clock; the
                // FAKETIME_* variables they inherit do nothing without the library.
                env.put("LD_PRELOAD", AgentDaemon.LIBFAKETIME.toString());
                env.put("FAKETIME_TIMESTAMP_FILE", clock.toString());
                // Re-read the file every second, so that a jump takes effect while the agent runs.
                env.put("FAKETIME_CACHE_DURATION", "1");
                // A clock step moves CLOCK_REALTIME only; timeouts on the monotonic clock must not see it.
                env.put("FAKETIME_DONT_FAKE_MONOTONIC", "1");
                // libfaketime 0.9.10 turns its "monotonic fix" on by itself under glibc, and with it
                // every timed wait of the JVM's idle threads wakes at once: an idle agent burnt a third
                // of a core (2.8 s of CPU in 15 s for an empty JVM, 0.1 s with the fix off), which
                // slowed a 2-core cluster tenfold. Waits and the wall-clock offset work without it.
                env.put("FAKETIME_FORCE_MONOTONIC_FIX", "0");
            }
            List<String> cmd = new ArrayList<>(settings.launcher.daemon(DaemonJvm.AGENT, settings.jvmOptions));
            cmd.addAll(List.of(
                    "agent",
                    "--host-id",
                    spec.hostId(),
                    "--data-dir",
                    data.toString(),
                    "--ram-dir",
                    ram.toString(),
                    "--driver",
                    spec.driver(),
                    "--zk",
                    zkConnect(),
                    "--cluster-name",
                    settings.clusterName,
                    "--session-timeout-ms",
                    Long.toString(settings.sessionTimeout.toMillis()),
                    "--memory",
                    spec.memory(),
                    "--vcpus",
                    Integer.toString(spec.vcpus()),
                    "--endpoint-file",
                    endpointFile.toString()));
            cmd.addAll(tlsArgs("a", spec.hostId()));
            if (spec.wildcardListen()) {
                cmd.addAll(List.of("--listen", "0.0.0.0:" + AGENT_PORT, "--advertise", h.address() + ":" + AGENT_PORT));
            } else {
                cmd.addAll(List.of("--listen", h.address() + ":" + AGENT_PORT));
            }
            cmd.addAll(spec.extraArgs());
            agents.put(
                    spec.hostId(),
                    new AgentDaemon(
                            spec,
                            h,
                            cmd,
                            env,
                            root.resolve(spec.hostId() + ".log"),
                            data,
                            ram,
                            endpointFile,
                            clock,
                            d -> Files.exists(endpointFile),
                            () -> deleteIfExists(endpointFile)));
        }
    }

    // ---- the operator's commands

    /**
     * Runs {@code ferry ARGS --zk ENSEMBLE --cluster-name NAME} in the control namespace (the
     * cluster options are appended unless ARGS has {@code --zk} or {@code --cluster}), waits up to
     * 2 minutes, and returns what it did.
     */
    public CommandResult cli(String... args) {
        return cli(Duration.ofMinutes(2), List.of(args));
    }

    /** {@link #cli(String...)} with a deadline of {@code timeout}. */
    public CommandResult cli(Duration timeout, List<String> args) {
        return control.exec(timeout, cliCommand(args));
    }

    /**
     * The command line of {@code ferry ARGS} with this cluster's options, as {@link #cli} runs it:
     * for a command that runs on (a console follower) in {@code control().wrap(...)}.
     */
    public List<String> cliCommand(List<String> args) {
        List<String> cmd = new ArrayList<>(settings.launcher.cli());
        cmd.addAll(withClusterOptions(args));
        return cmd;
    }

    /** {@code args} with this cluster's {@code --zk}, name and operator credentials, unless given. */
    private List<String> withClusterOptions(List<String> args) {
        List<String> all = new ArrayList<>(args);
        if (!all.contains("--zk") && !all.contains("--cluster")) {
            all.addAll(List.of("--zk", zkConnect(), "--cluster-name", settings.clusterName));
            all.addAll(tlsArgs("o", "operator"));
        }
        return all;
    }

    /**
     * {@code ferry ARGS} run in the control host's {@link ControlShell}: the same output as {@link
     * #cli}, without a JVM start and two TLS handshakes each time. For what a test polls ({@code vm
     * list --json}, {@code cluster status --json}) and its own clean-up between runs; the commands a
     * test exercises go through {@link #cli}, as an operator runs them.
     */
    public CommandResult cliInShell(Duration timeout, List<String> args) {
        return shell().cli(timeout, withClusterOptions(args));
    }

    /** The control host's {@link ControlShell}, started on first use, closed with the cluster. */
    public synchronized ControlShell shell() {
        if (shell == null) {
            shell = new ControlShell(control.wrap(List.of()), settings.launcher.classPath());
        }
        return shell;
    }

    /** {@link #cli(String...)} that fails unless the command exits 0; returns its stdout. */
    public String cliOk(String... args) {
        CommandResult r = cli(args);
        if (!r.ok()) {
            throw new AssertionError(r.describe());
        }
        return r.stdout();
    }

    // ---- accessors

    /** This cluster's id, the prefix of all its namespace names. */
    public String id() {
        return id;
    }

    public State state() {
        return state.get();
    }

    /** The cluster's scratch directory (logs, ZooKeeper data, agents' data and RAM directories). */
    public Path root() {
        return root;
    }

    /** The cluster's name in ZooKeeper. */
    public String clusterName() {
        return settings.clusterName;
    }

    /** The agents' session timeout. */
    public Duration sessionTimeout() {
        return settings.sessionTimeout;
    }

    /** The namespace holding the bridge. */
    public String switchNamespace() {
        return switchNamespace;
    }

    /** The client on the guest segment ({@link Builder#guestSegment}), at {@link #GUEST_CLIENT_ADDRESS}. */
    public NetnsHost guestClient() {
        if (guestClient == null) {
            throw new IllegalStateException("this cluster has no guest segment (Builder.guestSegment)");
        }
        return guestClient;
    }

    /** The host CLI commands run on; it runs no daemon. */
    public NetnsHost control() {
        return control;
    }

    /** Every host: control, ZooKeeper servers, coordinators, agents, in that order. */
    public List<NetnsHost> hosts() {
        return List.copyOf(hosts);
    }

    /** ZooKeeper server {@code i}, 1-based (its myid). */
    public Daemon zookeeper(int i) {
        if (i < 1 || i > zookeepers.size()) {
            throw new IllegalArgumentException("no ZooKeeper server " + i + " (1-" + zookeepers.size() + ")");
        }
        return zookeepers.get(i - 1);
    }

    public List<Daemon> zookeepers() {
        return List.copyOf(zookeepers);
    }

    /** Coordinator replica {@code i}, 1-based. */
    public Daemon coordinator(int i) {
        if (i < 1 || i > coordinators.size()) {
            throw new IllegalArgumentException("no coordinator " + i + " (1-" + coordinators.size() + ")");
        }
        return coordinators.get(i - 1);
    }

    public List<Daemon> coordinators() {
        return List.copyOf(coordinators);
    }

    public AgentDaemon agent(String hostId) {
        AgentDaemon a = agents.get(hostId);
        if (a == null) {
            throw new IllegalArgumentException("no agent " + hostId + " (" + agents.keySet() + ")");
        }
        return a;
    }

    public List<AgentDaemon> agents() {
        return List.copyOf(agents.values());
    }

    /** Every daemon: ZooKeeper servers, coordinators, agents. */
    public List<Daemon> daemons() {
        List<Daemon> all = new ArrayList<>(zookeepers);
        all.addAll(coordinators);
        all.addAll(agents.values());
        return all;
    }

    /** Pids of every process in the host's namespace now (the daemon and, on an agent host, its QEMUs). */
    public List<Long> pidsOn(NetnsHost h) {
        return StaleNamespaces.pids(h.namespace()).stream().map(Long::parseLong).toList();
    }

    /** Whether any of this cluster's namespaces still exists (false after {@link #close()}). */
    public boolean anyNamespaceLeft() {
        return !StaleNamespaces.namespacesOf(id).isEmpty();
    }

    // ---- teardown

    /** Kills everything and removes the namespaces, mounts and files; idempotent. */
    @Override
    public void close() {
        if (state.getAndSet(State.CLOSED) == State.CLOSED) {
            return;
        }
        try {
            Runtime.getRuntime().removeShutdownHook(shutdownHook);
        } catch (IllegalStateException e) {
            // The JVM is shutting down: this is the hook.
        }
        synchronized (this) {
            if (shell != null) {
                shell.close();
            }
        }
        for (Daemon d : daemons()) {
            try {
                d.kill();
            } catch (RuntimeException e) {
                log.warn("killing {}: {}", d, e.toString());
            }
        }
        boolean keep = Boolean.getBoolean("ferry.testkit.keep");
        List<String> problems = StaleNamespaces.remove(id, keep ? null : root);
        if (keep) {
            for (Path m : StaleNamespaces.mountsUnder(root)) {
                Commands.run(List.of("umount", "-l", m.toString()));
            }
            log.info("netns cluster {} closed; its files are kept in {}", id, root);
        }
        if (!problems.isEmpty()) {
            throw new IllegalStateException("netns cluster " + id + " left: " + String.join("; ", problems));
        }
    }

    private void closeQuietly() {
        try {
            close();
        } catch (RuntimeException e) {
            log.warn("closing netns cluster {}: {}", id, e.toString());
        }
    }

    @Override
    public String toString() {
        return "NetnsCluster[" + id + ", " + state.get().name().toLowerCase(Locale.ROOT) + "]";
    }

    private static void write(Path f, String text) {
        try {
            Files.writeString(f, text, StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void mkdirs(Path d) {
        try {
            Files.createDirectories(d);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void deleteIfExists(Path f) {
        try {
            Files.deleteIfExists(f);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
