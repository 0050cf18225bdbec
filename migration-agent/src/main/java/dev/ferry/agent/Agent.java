package dev.ferry.agent;

import dev.ferry.hypervisor.HostCapabilities;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.migration.receive.MigrationStreamService;
import dev.ferry.proto.agent.AgentInfo;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import io.grpc.Server;
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

    private final AgentConfig config;
    private final HypervisorDriver driver;
    private final CommitProvider commits;
    private final boolean clustered;
    private final AtomicReference<State> state = new AtomicReference<>(State.LATENT);
    private final VmRegistry registry;
    private final MigrationStreamService streams = new MigrationStreamService();
    private final ScheduledExecutorService timers = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("ferry-agent-timer").factory());
    private final ExecutorService serverExecutor = Executors.newVirtualThreadPerTaskExecutor();
    private IncomingMigrations incoming;
    private Server server;
    private Endpoint endpoint;
    private DirectoryLock dataLock;
    private DirectoryLock ramLock;

    public Agent(AgentConfig config, HypervisorDriver driver, CommitProvider commits) {
        this(config, driver, commits, Ownership.standalone());
    }

    /** An agent whose VMs run only while {@code ownership} says so (a cluster member). */
    public Agent(AgentConfig config, HypervisorDriver driver, CommitProvider commits, Ownership ownership) {
        this.config = config;
        this.driver = driver;
        this.commits = commits;
        this.clustered = ownership.clustered();
        this.registry = new VmRegistry(config.hostId(), driver, config.dataDir(), config.ramDir(), ownership);
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
        registry.cleanStaleFiles();
        Transport transport = config.transport();
        incoming = new IncomingMigrations(
                registry,
                streams,
                commits.incoming(),
                timers,
                config.incomingTimeout(),
                config.timeouts().ready());
        OutgoingMigrations outgoing = new OutgoingMigrations(registry, transport, commits, config.timeouts());
        AgentControlService control = new AgentControlService(
                registry, incoming, outgoing, streams, this::info, LeaderTerms.open(config.dataDir(), clustered));
        server = transport.startServer(
                config.listen(), serverExecutor, List.of(control.definition(), streams.definition()));
        endpoint = Transport.boundEndpoint(config.listen(), server);
        incoming.streamEndpoint(endpoint);
        if (config.endpointFile() != null) {
            Path tmp =
                    config.endpointFile().resolveSibling(config.endpointFile().getFileName() + ".tmp");
            Files.writeString(tmp, endpoint + "\n", StandardCharsets.UTF_8);
            Files.move(tmp, config.endpointFile(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        }
        HostCapabilities caps = driver.capabilities();
        log.info(
                "agent {} serving on {} with the {} driver; dirty tracking: {}",
                config.hostId(),
                endpoint,
                driver.name(),
                caps.dirtyTrackingDetail());
        return this;
    }

    public Endpoint endpoint() {
        return endpoint;
    }

    public String hostId() {
        return config.hostId();
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
     * Fencing: this host may no longer own anything (it lost its cluster session), so every VM dies
     * now, is marked FAILED with {@code reason}, and every incoming migration is discarded. The agent
     * keeps serving; the VMs may run again here only once the cluster gives them back. Returns the
     * VMs that were killed.
     */
    public List<String> fence(String reason) {
        if (state.get() != State.STARTED) {
            return List.of();
        }
        List<String> killed = registry.fenceAll(reason);
        if (incoming != null) {
            incoming.closeAll(reason);
        }
        log.warn("agent {} fenced: {}; killed {}", config.hostId(), reason, killed.isEmpty() ? "no VM" : killed);
        return killed;
    }

    /**
     * True while {@code vm} runs here or is paused here (a paused VM may resume): the VM still needs
     * its run lock.
     */
    public boolean holds(String vm) {
        return registry.holds(vm);
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

    @Override
    public void close() {
        State was = state.getAndSet(State.CLOSED);
        if (was == State.CLOSED) {
            return;
        }
        if (was == State.STARTED) {
            log.info("agent {} shutting down", config.hostId());
            server.shutdown();
            if (incoming != null) {
                incoming.closeAll("agent shutting down");
            }
            registry.closeAll();
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
        driver.close();
        if (ramLock != null) {
            ramLock.close();
        }
        if (dataLock != null) {
            dataLock.close();
        }
    }
}
