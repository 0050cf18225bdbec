package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.metrics.CoordinatorMetrics;
import dev.ferry.metrics.MetricsServer;
import dev.ferry.proto.coordinator.ClusterStatus;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.ServingHealth;
import dev.ferry.rpc.Transport;
import io.grpc.Server;
import io.grpc.ServerServiceDefinition;
import java.io.Closeable;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.leader.Participant;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One coordinator replica. All replicas serve the API and take part in a Curator LeaderLatch
 * under {@code /leader}, with their API endpoint as participant id (so clients find the leader).
 * The latch gives up leadership on SUSPENDED and re-checks it on RECONNECTED; this replica
 * follows it: a {@link Term} starts when it leads and is closed (its work interrupted) when it
 * stops. Taking office allocates the next leader term in ZooKeeper ({@link WriteGuard}); whatever a
 * deposed leader still tries to write fails (each write checks its latch node and its term), and
 * whatever it still orders an agent is refused (each order carries its term).
 *
 * <p>Lifecycle LATENT, STARTED, CLOSED.
 */
public final class Coordinator implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(Coordinator.class);

    public enum State {
        LATENT,
        STARTED,
        CLOSED
    }

    private final CoordinatorConfig config;
    private final AgentActions agents;
    private final RestartGate gate;
    private final Clocks clocks;
    private final AtomicReference<State> state = new AtomicReference<>(State.LATENT);
    private final ExecutorService serverExecutor = Executors.newVirtualThreadPerTaskExecutor();
    private final ExecutorService leadership = Executors.newSingleThreadExecutor(
            Thread.ofPlatform().daemon().name("ferry-leadership").factory());
    private CuratorFramework zk;
    private ClusterStore store;
    private LeaderLatch latch;
    private volatile OutagePromises promises;
    private final java.util.concurrent.ScheduledExecutorService promiseTicker =
            java.util.concurrent.Executors.newSingleThreadScheduledExecutor(
                    Thread.ofPlatform().daemon().name("ferry-outage-promises").factory());
    private Server server;
    private Endpoint endpoint;
    private volatile Term term;
    /** grpc.health.v1 on the replica's server: SERVING once started (leading or not), NOT_SERVING from close on. */
    private final ServingHealth health = new ServingHealth();
    /** Counted whether or not they are served; served on {@link CoordinatorConfig#metricsListen} when set. */
    private final CoordinatorMetrics metrics;

    private MetricsServer metricsServer;

    /** A coordinator that calls agents over gRPC. */
    public Coordinator(CoordinatorConfig config) {
        this(config, new GrpcAgentActions(config.transport(), config.agentDeadline()));
    }

    public Coordinator(CoordinatorConfig config, AgentActions agents) {
        this(config, agents, RestartGate.ALWAYS);
    }

    /** A coordinator whose restarts also ask {@code gate} (see {@link RestartGate}). */
    public Coordinator(CoordinatorConfig config, AgentActions agents, RestartGate gate) {
        this(config, agents, gate, Clocks.SYSTEM);
    }

    Coordinator(CoordinatorConfig config, AgentActions agents, RestartGate gate, Clocks clocks) {
        this.config = config;
        this.agents = agents;
        this.gate = gate;
        this.clocks = clocks;
        this.metrics = new CoordinatorMetrics(config.zk().cluster(), version());
        metrics.leadership(this::isLeader, () -> {
            Term t = term();
            return t == null ? 0 : t.guard.term();
        });
        metrics.leaderView(() -> {
            Term t = term();
            return t == null ? null : new TermView(t);
        });
    }

    static String version() {
        String v = Coordinator.class.getPackage().getImplementationVersion();
        return v == null ? "dev" : v;
    }

    /** This replica's metrics (counted whether or not they are served). */
    public CoordinatorMetrics metrics() {
        return metrics;
    }

    /** HOST:PORT the metrics are served on (the port resolved), or null when they are not. */
    public String metricsEndpoint() {
        MetricsServer m = metricsServer;
        return m == null ? null : m.endpoint();
    }

    /**
     * With ZooKeeper x509 the cluster's tree must carry the cluster's ACLs: a namespace created
     * before by someone else (or by an --insecure run) would leave every node open. Refuses to
     * start on such a tree unless told to repair it.
     */
    private void auditAcls() throws Exception {
        if (!(config.zk().security() instanceof dev.ferry.cluster.store.ZkSecurity.X509)) {
            return;
        }
        dev.ferry.cluster.store.ZkAcls acls =
                new dev.ferry.cluster.store.ZkAcls(config.zk().cluster());
        List<dev.ferry.cluster.store.AclAudit.Finding> found = dev.ferry.cluster.store.AclAudit.audit(zk, acls);
        if (found.isEmpty()) {
            return;
        }
        if (!config.repairAcls()) {
            throw new IOException("the cluster's ZooKeeper tree is not protected by its ACLs: " + found
                    + ". It was created before this cluster first started securely (by an --insecure run, or by "
                    + "someone else). Check what is in " + acls.root() + ", then start this coordinator once with "
                    + "--repair-acls to set the cluster's ACLs on every node of it");
        }
        int changed = dev.ferry.cluster.store.AclAudit.repair(zk, acls);
        log.warn("repaired the ACLs of {} node(s) under {} ({})", changed, acls.root(), found);
    }

    public Coordinator start() throws IOException {
        if (!state.compareAndSet(State.LATENT, State.STARTED)) {
            throw new IllegalStateException("coordinator is " + state.get());
        }
        zk = config.zk().retrying();
        // Before the start, so that the first CONNECTED is heard too.
        zk.getConnectionStateListenable()
                .addListener((client, newState) -> metrics.zooKeeper(
                        switch (newState) {
                            case CONNECTED, RECONNECTED -> "connected";
                            case SUSPENDED -> "suspended";
                            case LOST -> "lost";
                            case READ_ONLY -> "read_only";
                        }));
        zk.start();
        try {
            if (!zk.blockUntilConnected((int) config.zk().connectionTimeout().toMillis() * 4, TimeUnit.MILLISECONDS)) {
                throw new IOException("cannot reach ZooKeeper at " + config.zk().connect() + ": "
                        + config.zk().whyNoSession());
            }
            store = new ClusterStore(zk);
            store.ensureLayout();
            auditAcls();
        } catch (IOException e) {
            close();
            throw e;
        } catch (Exception e) {
            close();
            throw new IOException("cannot prepare the cluster in ZooKeeper: " + e, e);
        }
        CoordinatorService service = new CoordinatorService(this);
        CuratorFramework client = zk;
        promises = OutagePromises.forMargin(
                config.failoverMargin(), () -> client.getZookeeperClient().isConnected());
        List<ServerServiceDefinition> services =
                List.of(service.definition(), promises.definition(), health.definition());
        server = config.transport()
                .startServer(config.listen(), serverExecutor, services, CoordinatorAccess.policy(config.changeLimit()));
        endpoint = config.advertise() != null ? config.advertise() : Transport.boundEndpoint(config.listen(), server);
        if (config.metricsListen() != null) {
            try {
                metricsServer = metrics.serve(config.metricsListen());
            } catch (IOException e) {
                close();
                throw new IOException("cannot serve metrics on " + config.metricsListen() + ": " + e.getMessage(), e);
            }
        }
        promises.replica(endpoint.toString());
        OutagePromises p = promises;
        promiseTicker.scheduleWithFixedDelay(p::tick, 0, 100, TimeUnit.MILLISECONDS);
        latch = new LeaderLatch(zk, ClusterPaths.LEADER, endpoint.toString());
        latch.addListener(
                new LeaderLatchListener() {
                    @Override
                    public void isLeader() {
                        lead();
                    }

                    @Override
                    public void notLeader() {
                        stepDown("the latch says another replica leads (or the connection to ZooKeeper was lost)");
                    }
                },
                leadership);
        try {
            latch.start();
        } catch (Exception e) {
            close();
            throw new IOException("cannot join the leader election: " + e, e);
        }
        log.info(
                "coordinator serving on {} for cluster '{}' at {}{}",
                endpoint,
                config.zk().cluster(),
                config.zk().connect(),
                metricsServer == null ? "" : "; metrics on http://" + metricsServer.endpoint() + "/metrics");
        health.serving(services);
        return this;
    }

    private void lead() {
        if (state.get() != State.STARTED || !latch.hasLeadership()) {
            return;
        }
        String path = latch.getOurPath();
        Term t = null;
        try {
            WriteGuard guard = WriteGuard.takeOffice(store, endpoint.toString(), path, clocks.wallMillis());
            t = new Term(config, guard, agents, outageFirst(gate), clocks, metrics);
            t.start();
            term = t;
            metrics.tookOffice();
        } catch (Exception e) {
            log.error("{} could not take up leadership: {}; giving it up", endpoint, e.toString());
            if (t != null) {
                t.close();
            }
            relinquish();
        }
    }

    /** Leaves the election and joins it again (a leader that cannot lead must not block the others). */
    private void relinquish() {
        try {
            LeaderLatch old = latch;
            latch = new LeaderLatch(zk, ClusterPaths.LEADER, endpoint.toString());
            latch.addListener(
                    new LeaderLatchListener() {
                        @Override
                        public void isLeader() {
                            lead();
                        }

                        @Override
                        public void notLeader() {
                            stepDown("lost the latch");
                        }
                    },
                    leadership);
            old.close();
            latch.start();
        } catch (Exception e) {
            log.error("cannot rejoin the leader election: {}", e.toString());
        }
    }

    private void stepDown(String why) {
        Term t = term;
        term = null;
        if (t != null) {
            log.warn("{} stops leading: {}", endpoint, why);
            t.close();
        }
    }

    public State state() {
        return state.get();
    }

    public Endpoint endpoint() {
        return endpoint;
    }

    /** Restarts ask this replica's outage promises first, then {@code other}. */
    private RestartGate outageFirst(RestartGate other) {
        RestartGate outage = promises.gate();
        return (host, vm, nowNanos) -> {
            RestartGate.Verdict v = outage.check(host, vm, nowNanos);
            return v instanceof RestartGate.Now ? other.check(host, vm, nowNanos) : v;
        };
    }

    /** How this replica reaches agents (the console proxy opens its streams through it). */
    AgentActions agents() {
        return agents;
    }

    /** This replica's promises to agents riding out a ZooKeeper outage (restart decisions consult them). */
    OutagePromises promises() {
        return promises;
    }

    public boolean isLeader() {
        Term t = term;
        return t != null && !t.closed();
    }

    Term term() {
        Term t = term;
        return t == null || t.closed() ? null : t;
    }

    CoordinatorConfig config() {
        return config;
    }

    ClusterStore store() {
        return store;
    }

    /** The leader's endpoint as the election says now (asks ZooKeeper), or empty. */
    String leaderEndpoint() {
        try {
            Participant p = latch.getLeader();
            return p != null && p.isLeader() ? p.getId() : "";
        } catch (Exception e) {
            return "";
        }
    }

    ClusterStatus status() throws Exception {
        ClusterStatus.Builder b = ClusterStatus.newBuilder()
                .setCluster(config.zk().cluster())
                .setZookeeper(config.zk().connect())
                .setAnsweredBy(endpoint.toString())
                .setLeader(leaderEndpoint())
                .setFailoverMarginMs(config.failoverMargin().toMillis())
                .setMaxConcurrentRestarts(config.maxConcurrentRestarts());
        // This replica's own certificate: coordinators have no registration of their own, so
        // `cluster status` asks each replica for it.
        config.transport()
                .expiry()
                .ifPresent(e -> b.setCertificateIdentity(e.identity().toString())
                        .setCertificateNotAfterMs(e.notAfter().toEpochMilli())
                        .setCaNotAfterMs(e.caNotAfter().toEpochMilli()));
        if (!b.getLeader().isEmpty()) {
            store.leaderTerm().ifPresent(lt -> b.setLeaderTerm(lt.value().getTerm()));
        }
        List<String> replicas = new ArrayList<>();
        for (Participant p : latch.getParticipants()) {
            replicas.add(p.getId());
        }
        b.addAllCoordinators(replicas);
        b.setHostsAlive(store.children(ClusterPaths.HOSTS).size());
        b.setHostsInMaintenance(store.children(ClusterPaths.MAINTENANCE).size());
        b.setVms(store.children(ClusterPaths.VMS).size());
        b.setVmsRunning(store.children(ClusterPaths.RUNNING).size());
        Term t = term();
        if (t != null) {
            b.setOpenIntents((int) t.view.intents().values().stream()
                    .filter(v -> Intents.isOpen(v.value()))
                    .count());
            b.setRestartsInFlight(t.slots.inFlight());
        }
        return b.build();
    }

    /**
     * Stops this replica at once: its term's work is interrupted mid-step, its session closes (so
     * another replica leads immediately), and it serves no more.
     */
    @Override
    public void close() {
        if (state.getAndSet(State.CLOSED) == State.CLOSED) {
            return;
        }
        health.shuttingDown();
        stepDown("closing");
        promiseTicker.shutdownNow();
        if (latch != null) {
            try {
                latch.close(LeaderLatch.CloseMode.SILENT);
            } catch (Exception e) {
                // the session closes below anyway
            }
        }
        if (server != null) {
            server.shutdownNow();
        }
        leadership.shutdownNow();
        serverExecutor.shutdownNow();
        if (zk != null) {
            zk.close();
        }
        agents.close();
        if (metricsServer != null) {
            metricsServer.close();
        }
    }

    /** ZooKeeper write requests (transactions) this replica has sent, for benchmarks. */
    public long writeRequests() {
        return store == null ? 0 : store.writeRequests();
    }

    /** Operations inside those transactions (version and leadership checks included), for benchmarks. */
    public long writeOps() {
        return store == null ? 0 : store.writeOps();
    }

    /** The election's view of the replicas, for tests and status: leader first. */
    public List<String> replicas() throws Exception {
        List<String> out = new ArrayList<>();
        for (Participant p : latch.getParticipants()) {
            out.add(p.getId());
        }
        return out;
    }

    /** Waits until this replica leads and has loaded its picture; false on timeout. */
    public boolean awaitLeadership(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!isLeader()) {
            if (System.nanoTime() > deadline || state.get() == State.CLOSED) {
                return false;
            }
            Thread.sleep(20);
        }
        return true;
    }
}
