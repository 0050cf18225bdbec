package dev.ferry.agent;

import dev.ferry.hypervisor.HostCapabilities;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.metrics.AgentMetrics;
import dev.ferry.metrics.MetricsServer;
import dev.ferry.migration.precopy.SenderFaults;
import dev.ferry.migration.receive.MigrationStreamService;
import dev.ferry.proto.agent.AgentInfo;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.ServingHealth;
import dev.ferry.rpc.Transport;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The per-host daemon: serves the control API and the migration stream, owns this host's VMs.
 * Lifecycle LATENT, STARTED, CLOSED; {@link #close()} stops every VM of this host and removes
 * their files.
 */
public final class Agent implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Agent.class);

    public enum State {
        LATENT,
        STARTED,
        CLOSED
    }

    static final long LEASE_RENEW_MS = 100;

    private final AgentConfig config;
    private final Ownership ownership;
    private final HypervisorDriver driver;
    private final CommitProvider commits;
    private final boolean clustered;
    private final AtomicReference<State> state = new AtomicReference<>(State.LATENT);
    private final VmRegistry registry;
    private final MigrationStreamService streams = new MigrationStreamService();
    private final ScheduledExecutorService timers = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("ferry-agent-timer").factory());
    private final ExecutorService serverExecutor = Executors.newVirtualThreadPerTaskExecutor();
    /** grpc.health.v1 on the agent's server: SERVING once started, NOT_SERVING from the shutdown on. */
    private final ServingHealth health = new ServingHealth();
    /** Counted whether or not they are served; served on {@link AgentConfig#metricsListen} when set. */
    private final AgentMetrics metrics;

    private volatile IncomingMigrations incoming;
    private MetricsServer metricsServer;
    private Server server;
    private Endpoint endpoint;
    private DirectoryLock dataLock;
    private DirectoryLock ramLock;

    public Agent(AgentConfig config, HypervisorDriver driver, CommitProvider commits) {
        this(config, driver, commits, Ownership.standalone());
    }

    private volatile OutgoingMigrations outgoing;
    private volatile SenderFaults senderFaults = SenderFaults.NONE;

    /** An agent whose VMs run only while {@code ownership} says so (a cluster member). */
    public Agent(AgentConfig config, HypervisorDriver driver, CommitProvider commits, Ownership ownership) {
        this.config = config;
        this.ownership = ownership;
        this.driver = driver;
        this.commits = commits;
        this.clustered = ownership.clustered();
        this.registry = new VmRegistry(config.hostId(), driver, config.dataDir(), config.ramDir(), ownership);
        this.metrics = new AgentMetrics(config.hostId(), driver.name(), version());
        metrics.vmsByState(registry::countByState);
        metrics.incoming(() -> {
            IncomingMigrations i = incoming;
            return i == null ? 0 : i.receiving();
        });
    }

    public Agent start() throws IOException {
        if (!state.compareAndSet(State.LATENT, State.STARTED)) {
            throw new IllegalStateException("agent is " + state.get());
        }
        Files.createDirectories(config.dataDir());
        Files.createDirectories(config.ramDir());
        // Two agents on one data or RAM directory would delete each other's guests as stale files.
        dataLock = DirectoryLock.acquire(config.dataDir());
        ramLock = DirectoryLock.acquire(config.ramDir());
        List<String> adopted = registry.adoptLeftovers();
        if (!adopted.isEmpty()) {
            log.info("agent {} adopted guests an earlier agent process left running: {}", config.hostId(), adopted);
        }
        if (ownership.leases()) {
            // Often compared with the lease (5/6 of a session timeout): a renewal missed now and then
            // costs nothing, and a frozen agent renews nothing, so its guests stop by themselves.
            timers.scheduleWithFixedDelay(registry::renewLeases, 0, LEASE_RENEW_MS, TimeUnit.MILLISECONDS);
        }
        Transport transport = config.transport();
        incoming = new IncomingMigrations(
                registry,
                streams,
                commits.incoming(),
                timers,
                new dev.ferry.migration.receive.IncomingMigration.Deadlines(
                        config.incomingTimeout(),
                        config.idleTimeout(),
                        config.timeouts().ready()),
                config.maxIncoming());
        MigrationRecords records = new MigrationRecords(
                        config.dataDir().resolve("migrations"),
                        new MigrationRecords.Retention(config.reportsKept(), config.reportRetention()),
                        java.time.Clock.systemUTC())
                .load();
        outgoing = new OutgoingMigrations(registry, transport, commits, config.timeouts(), metrics, records);
        outgoing.faults(senderFaults);
        AgentControlService control = new AgentControlService(
                registry,
                incoming,
                outgoing,
                streams,
                this::info,
                LeaderTerms.open(config.dataDir(), clustered),
                new ConsoleService(ConsoleService.of(registry), config.hostId(), clustered));
        List<ServerServiceDefinition> services =
                List.of(control.definition(), streams.definition(), health.definition());
        server = transport.startServer(config.listen(), serverExecutor, services, AgentAccess.policy(clustered));
        Endpoint bound = Transport.boundEndpoint(config.listen(), server);
        // What other hosts are told (registration, stream endpoint): a wildcard or NATed bind is not an address.
        endpoint = config.advertise() != null ? config.advertise() : bound;
        incoming.streamEndpoint(endpoint);
        if (config.metricsListen() != null) {
            try {
                metricsServer = metrics.serve(config.metricsListen());
            } catch (IOException e) {
                throw new IOException("cannot serve metrics on " + config.metricsListen() + ": " + e.getMessage(), e);
            }
        }
        if (config.endpointFile() != null) {
            Path tmp =
                    config.endpointFile().resolveSibling(config.endpointFile().getFileName() + ".tmp");
            Files.writeString(tmp, endpointFileText(), StandardCharsets.UTF_8);
            Files.move(tmp, config.endpointFile(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        }
        HostCapabilities caps = driver.capabilities();
        log.info(
                "agent {} serving on {} (advertised as {}) with the {} driver; dirty tracking: {}{}",
                config.hostId(),
                bound,
                endpoint,
                driver.name(),
                caps.dirtyTrackingDetail(),
                metricsServer == null ? "" : "; metrics on http://" + metricsServer.endpoint() + "/metrics");
        health.serving(services);
        return this;
    }

    /**
     * What the endpoint file says: the endpoint alone on its first line (what older readers take),
     * then {@code metrics HOST:PORT} when the metrics are served.
     */
    public String endpointFileText() {
        String m = metricsEndpoint();
        return endpoint + "\n" + (m == null ? "" : "metrics " + m + "\n");
    }

    /** This agent's metrics (counted whether or not they are served). */
    public AgentMetrics metrics() {
        return metrics;
    }

    /** HOST:PORT the metrics are served on (the port resolved), or null when they are not. */
    public String metricsEndpoint() {
        MetricsServer m = metricsServer;
        return m == null ? null : m.endpoint();
    }

    public Endpoint endpoint() {
        return endpoint;
    }

    public String hostId() {
        return config.hostId();
    }

    /**
     * Test only: faults every later outgoing migration of this agent runs with (a page dropped from
     * the final round, a lost Commit or Resumed, lanes cut at Ready), to show that the checks meant
     * to catch them fire. No flag, setting or RPC reaches this; production agents run with
     * {@link SenderFaults#NONE}.
     */
    public void injectSenderFaults(SenderFaults faults) {
        senderFaults = java.util.Objects.requireNonNull(faults);
        OutgoingMigrations o = outgoing;
        if (o != null) {
            o.faults(faults);
        }
    }

    public State state() {
        return state.get();
    }

    /** The driver instance of a VM this host owns, or null (tests and diagnostics). */
    public dev.ferry.hypervisor.VmInstance instance(String vm) {
        try {
            return registry.get(vm).instance();
        } catch (AgentException e) {
            return null;
        }
    }

    /**
     * Fencing: this host may no longer own anything (it lost its standing in the cluster), so every
     * guest stops executing now (frozen, its lease revoked) and its VM is FENCED with {@code
     * reason}; every incoming migration is discarded. Nothing is killed yet: {@link #reclaim} later
     * lets each VM run on if the cluster confirms this host still owns it, and kills the copy if
     * another host does. The agent keeps serving. Returns the VMs that were frozen.
     */
    public List<String> fence(String reason) {
        if (state.get() != State.STARTED) {
            return List.of();
        }
        List<String> frozen = registry.fenceAll(reason);
        if (incoming != null) {
            incoming.discardAll(reason);
        }
        log.warn("agent {} fenced: {}; froze {}", config.hostId(), reason, frozen.isEmpty() ? "no VM" : frozen);
        return frozen;
    }

    /**
     * For every FENCED VM, whether this host owns it again ({@link Ownership#reclaim}): runs on,
     * killed (another host owns it), or still fenced (the cluster cannot tell yet). By VM.
     */
    public java.util.Map<String, String> reclaim() {
        if (state.get() != State.STARTED) {
            return java.util.Map.of();
        }
        return registry.reclaimFenced();
    }

    /** True while some VM waits, frozen, for {@link #reclaim}. */
    public boolean anyFenced() {
        return registry.anyFenced();
    }

    /**
     * True while {@code vm} runs here or is paused here (a paused VM may resume): the VM still needs
     * its run lock.
     */
    public boolean holds(String vm) {
        return registry.holds(vm);
    }

    /** Migrations this agent is receiving now (prepared, not yet committed or discarded). */
    public int incomingCount() {
        return incoming.receiving();
    }

    /** The registry itself, for this package's tests. */
    VmRegistry registryForTests() {
        return registry;
    }

    /** What this host offers, for cluster registration. */
    public AgentInfo describe() {
        return info();
    }

    AgentInfo info() {
        HostCapabilities caps = driver.capabilities();
        return AgentInfo.newBuilder()
                .setHostId(config.hostId())
                .setDriver(driver.name())
                .setVersion(version())
                .setMemoryBytes(Runtime.getRuntime().maxMemory())
                .setVcpus(Runtime.getRuntime().availableProcessors())
                .setDirtyTracking((caps.dirtyTracking() ? "available: " : "unavailable: ") + caps.dirtyTrackingDetail())
                .setPid(ProcessHandle.current().pid())
                .build();
    }

    static String version() {
        String v = Agent.class.getPackage().getImplementationVersion();
        return v == null ? "dev" : v;
    }

    /** Shuts the agent down and stops every VM of this host. */
    @Override
    public void close() {
        shutdown(false);
    }

    /**
     * Shuts the agent down for a restart (an upgrade): guests that run outside the agent process
     * keep running under their leases, with their run locks and files, for the next agent process
     * on this host to adopt; the rest stop. Returns the VMs left running.
     */
    public List<String> closeLeavingGuests() {
        return shutdown(true);
    }

    private List<String> shutdown(boolean leaveGuests) {
        State was = state.getAndSet(State.CLOSED);
        if (was == State.CLOSED) {
            return List.of();
        }
        List<String> left = List.of();
        // Health checkers watching hear it before the server stops taking calls.
        health.shuttingDown();
        if (was == State.STARTED) {
            log.info("agent {} shutting down{}", config.hostId(), leaveGuests ? ", leaving its guests running" : "");
            server.shutdown();
            if (incoming != null) {
                incoming.closeAll("agent shutting down");
            }
            timers.shutdownNow();
            if (leaveGuests) {
                left = registry.detachAll();
                log.info("agent {}: left running for the next agent process: {}", config.hostId(), left);
            } else {
                registry.closeAll();
            }
            try {
                if (!server.awaitTermination(5, TimeUnit.SECONDS)) {
                    server.shutdownNow();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                server.shutdownNow();
            }
        }
        timers.shutdownNow();
        serverExecutor.shutdownNow();
        if (metricsServer != null) {
            metricsServer.close();
        }
        driver.close();
        if (ramLock != null) {
            ramLock.close();
        }
        if (dataLock != null) {
            dataLock.close();
        }
        return left;
    }
}
