package dev.ferry.agent.cluster;

import dev.ferry.agent.AgentException;
import dev.ferry.agent.CommitProvider;
import dev.ferry.agent.Ownership;
import dev.ferry.cluster.policy.FencePolicy;
import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.migration.commit.CommitRequest;
import dev.ferry.proto.cluster.HostRecord;
import io.grpc.Status;
import java.io.Closeable;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An agent's membership of the cluster: its ZooKeeper session, its registration under
 * {@code /hosts/<id>}, and self-fencing.
 *
 * <p>The session is the host's lease. While it lives, the host's ephemeral nodes (its
 * registration and the run locks of its VMs) keep every other host from starting those VMs. When
 * the client loses its connection (Curator SUSPENDED) the host stops trusting its ownership: it
 * starts nothing and arms a fence deadline ({@link FencePolicy#fenceDelay}, on the monotonic
 * clock). Reconnecting to the same session before then disarms it. Otherwise, or as soon as the
 * session is known lost (LOST, or a reconnection with another session), it kills every VM and
 * discards every incoming migration; then it gives up the old session for good and joins afresh,
 * with nothing, under a new one. The registration is written by hand rather than with Curator's
 * PersistentNode because it must not reappear under a new session before the fence has run.
 *
 * <p>State changes run on one thread, in the order Curator reports them. Lifecycle: LATENT, then
 * {@link #start}, then {@link #close} (CLOSED); in between JOINING, MEMBER, SUSPENDED, FENCING.
 */
public final class ClusterMember implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(ClusterMember.class);

    /** The reason every fenced VM carries. */
    public static final String FENCE_REASON = "fenced: lost the cluster session";

    public enum State {
        LATENT,
        /** Connecting and registering; owns nothing. */
        JOINING,
        /** Registered; runs what the cluster gives it. */
        MEMBER,
        /** Connection lost; trusts nothing, fence deadline armed. */
        SUSPENDED,
        /** Killing its VMs; will join afresh. */
        FENCING,
        CLOSED
    }

    /** What the member needs of its agent. */
    public interface Host {
        /** The registration record (endpoint, capacity, labels, driver). */
        HostRecord describe();

        /** Kills every VM with {@code reason}; returns their names. */
        List<String> fence(String reason);

        /** True while {@code vm} runs or is paused here and so needs its run lock. */
        boolean holds(String vm);
    }

    /** One ZooKeeper session and what was learned about it. */
    static final class Session {
        final CuratorFramework client;
        final ClusterStore store;
        volatile long id;
        volatile Duration timeout;
        /** Send time (monotonic) of the last probe ZooKeeper answered: the server saw us no earlier. */
        final AtomicLong lastAnsweredProbe = new AtomicLong(Long.MIN_VALUE);

        volatile ScheduledFuture<?> prober;

        Session(CuratorFramework client) {
            this.client = client;
            this.store = new ClusterStore(client);
        }
    }

    private final ZkClients zk;
    private final String hostId;
    private final Duration auditInterval;
    private final ScheduledExecutorService events;
    private final ScheduledExecutorService background;
    private final AtomicReference<State> state = new AtomicReference<>(State.LATENT);
    private final ZkOwnership ownership;
    private final ZkOwnershipCommit commit;
    private final AtomicLong fences = new AtomicLong();
    private volatile Session session;
    private volatile Host host;
    private ScheduledFuture<?> fenceTimer;
    private long suspendedAtNanos;
    private boolean waitingLogged;
    private volatile Consumer<CommitRequest> beforeCommitWrite = r -> {};

    /**
     * @param auditInterval how often the member checks that it holds run locks only for VMs that
     *     run here (a lock whose release was lost, or taken by a start that then failed)
     */
    public ClusterMember(ZkClients zk, String hostId, Duration auditInterval) {
        this.zk = zk;
        this.hostId = ClusterPaths.checkName("host id", hostId);
        this.auditInterval = auditInterval;
        this.events = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().daemon().name("ferry-member-" + hostId).factory());
        this.background = Executors.newSingleThreadScheduledExecutor(Thread.ofPlatform()
                .daemon()
                .name("ferry-member-audit-" + hostId)
                .factory());
        this.ownership = new ZkOwnership(this);
        this.commit = new ZkOwnershipCommit(this);
    }

    public ClusterMember(ZkClients zk, String hostId) {
        this(zk, hostId, Duration.ofSeconds(5));
    }

    public String hostId() {
        return hostId;
    }

    public State state() {
        return state.get();
    }

    /** How many times this member fenced. */
    public long fences() {
        return fences.get();
    }

    /** The agent's run-lock hook. */
    public Ownership ownership() {
        return ownership;
    }

    /** The agent's commit: one ZooKeeper commit for every migration, in and out. */
    public CommitProvider commits() {
        return new CommitProvider() {
            @Override
            public dev.ferry.migration.commit.OwnershipCommit outgoing(dev.ferry.agent.client.AgentClient target) {
                return commit;
            }

            @Override
            public dev.ferry.migration.commit.OwnershipCommit incoming() {
                return commit;
            }
        };
    }

    /** Fault injection for tests: runs on the source just before its commit write. */
    public void beforeCommitWrite(Consumer<CommitRequest> hook) {
        this.beforeCommitWrite = hook == null ? r -> {} : hook;
    }

    Consumer<CommitRequest> beforeCommitWriteHook() {
        return beforeCommitWrite;
    }

    /** Joins the cluster: connects, then registers as soon as it can. Returns at once. */
    public ClusterMember start(Host host) {
        if (!state.compareAndSet(State.LATENT, State.JOINING)) {
            throw new IllegalStateException("cluster member is " + state.get());
        }
        this.host = host;
        events.execute(this::openSession);
        background.scheduleWithFixedDelay(
                ownership::audit, auditInterval.toMillis(), auditInterval.toMillis(), TimeUnit.MILLISECONDS);
        return this;
    }

    /** Waits until registered; false on timeout. */
    public boolean awaitMember(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (state.get() != State.MEMBER) {
            if (System.nanoTime() > deadline || state.get() == State.CLOSED) {
                return false;
            }
            Thread.sleep(20);
        }
        return true;
    }

    /** The session, if this host is a member in good standing now; otherwise why not. */
    Session memberSession(String forWhat) throws AgentException {
        State s = state.get();
        Session current = session;
        if (s != State.MEMBER || current == null) {
            throw new AgentException(
                    Status.Code.UNAVAILABLE,
                    hostId + " cannot " + forWhat + ": it is " + s.name().toLowerCase()
                            + " in the cluster (no trusted ZooKeeper session)");
        }
        return current;
    }

    /** The current session whatever the state (reads that only learn facts), or null. */
    Session anySession() {
        return session;
    }

    void ownershipTrack(String vm, long epoch, long sessionId) {
        ownership.track(vm, epoch, sessionId);
    }

    ScheduledExecutorService background() {
        return background;
    }

    Host host() {
        return host;
    }

    // ---- the state machine, on the events thread

    private void openSession() {
        if (state.get() == State.CLOSED) {
            return;
        }
        CuratorFramework client = zk.singleAttempt();
        Session s = new Session(client);
        client.getConnectionStateListenable().addListener((c, newState) -> events.execute(() -> onState(s, newState)));
        session = s;
        waitingLogged = false;
        client.start();
        events.schedule(() -> tryRegister(s), 50, TimeUnit.MILLISECONDS);
    }

    private void onState(Session s, ConnectionState newState) {
        if (s != session || state.get() == State.CLOSED) {
            return;
        }
        switch (newState) {
            case CONNECTED -> tryRegister(s);
            case SUSPENDED -> {
                if (state.compareAndSet(State.MEMBER, State.SUSPENDED)) {
                    suspendedAtNanos = System.nanoTime();
                    long deadline = FencePolicy.fenceDeadline(s.timeout, suspendedAtNanos, s.lastAnsweredProbe.get());
                    long delay = Math.max(0, deadline - suspendedAtNanos);
                    fenceTimer = events.schedule(
                            () -> {
                                if (s == session && state.get() == State.SUSPENDED) {
                                    fence(
                                            s,
                                            "no contact with ZooKeeper for " + delay / 1_000_000
                                                    + " ms after the connection was lost");
                                }
                            },
                            delay,
                            TimeUnit.NANOSECONDS);
                    log.warn(
                            "{}: lost contact with ZooKeeper (session 0x{}); VMs are killed in {} ms unless it comes back",
                            hostId,
                            Long.toHexString(s.id),
                            delay / 1_000_000);
                }
            }
            case RECONNECTED -> {
                long now = s.store.sessionId();
                if (state.get() == State.SUSPENDED) {
                    if (now == s.id) {
                        cancelFenceTimer();
                        state.set(State.MEMBER);
                        log.info(
                                "{}: back in touch with ZooKeeper after {} ms; session 0x{} kept, nothing fenced",
                                hostId,
                                (System.nanoTime() - suspendedAtNanos) / 1_000_000,
                                Long.toHexString(now));
                    } else {
                        fence(s, "the session was replaced (0x" + Long.toHexString(s.id) + " expired)");
                    }
                } else if (state.get() == State.MEMBER && now != s.id) {
                    fence(s, "the session was replaced (0x" + Long.toHexString(s.id) + " expired)");
                } else if (state.get() == State.JOINING) {
                    tryRegister(s);
                }
            }
            case LOST -> {
                State st = state.get();
                if (st == State.MEMBER || st == State.SUSPENDED) {
                    fence(s, "the session expired");
                }
            }
            default -> {}
        }
    }

    private void tryRegister(Session s) {
        if (s != session || state.get() != State.JOINING) {
            return;
        }
        try {
            if (!s.client.getZookeeperClient().isConnected()) {
                events.schedule(() -> tryRegister(s), 200, TimeUnit.MILLISECONDS);
                return;
            }
            s.id = s.store.sessionId();
            s.timeout = Duration.ofMillis(
                    s.client.getZookeeperClient().getZooKeeper().getSessionTimeout());
            HostRecord record = host.describe().toBuilder()
                    .setSchemaVersion(Records.SCHEMA_VERSION)
                    .setHostId(hostId)
                    .setRegisteredAtMs(System.currentTimeMillis())
                    .build();
            String path = ClusterPaths.host(hostId);
            try {
                s.client
                        .create()
                        .creatingParentsIfNeeded()
                        .withMode(CreateMode.EPHEMERAL)
                        .forPath(path, Records.encode(record));
            } catch (KeeperException.NodeExistsException e) {
                Stat stat = s.client.checkExists().forPath(path);
                if (stat == null || stat.getEphemeralOwner() != s.id) {
                    if (!waitingLogged) {
                        log.warn(
                                "{}: an earlier registration (session 0x{}) is still in ZooKeeper; waiting for it to expire",
                                hostId,
                                stat == null ? "?" : Long.toHexString(stat.getEphemeralOwner()));
                        waitingLogged = true;
                    }
                    events.schedule(() -> tryRegister(s), 250, TimeUnit.MILLISECONDS);
                    return;
                }
            }
            if (s.store.sessionId() != s.id) {
                // The session changed under us while registering: start over with the new one.
                events.schedule(() -> tryRegister(s), 50, TimeUnit.MILLISECONDS);
                return;
            }
            if (state.compareAndSet(State.JOINING, State.MEMBER)) {
                long every = FencePolicy.probeInterval(s.timeout).toMillis();
                s.prober = background.scheduleWithFixedDelay(() -> probe(s), 0, every, TimeUnit.MILLISECONDS);
                log.info(
                        "{}: joined the cluster (session 0x{}, timeout {} ms; fences {} ms after losing contact)",
                        hostId,
                        Long.toHexString(s.id),
                        s.timeout.toMillis(),
                        FencePolicy.fenceDelay(s.timeout).toMillis());
            }
        } catch (Exception e) {
            log.debug("{}: registration attempt failed: {}", hostId, e.toString());
            events.schedule(() -> tryRegister(s), 500, TimeUnit.MILLISECONDS);
        }
    }

    /**
     * Proves the session alive: a read answered by ZooKeeper means the server saw the session no
     * earlier than when the read was sent. Stops with its session.
     */
    private void probe(Session s) {
        if (s != session) {
            return;
        }
        long sent = System.nanoTime();
        try {
            s.client
                    .checkExists()
                    .inBackground((c, event) -> {
                        int rc = event.getResultCode();
                        if (rc == KeeperException.Code.OK.intValue() || rc == KeeperException.Code.NONODE.intValue()) {
                            s.lastAnsweredProbe.accumulateAndGet(sent, Math::max);
                        }
                    })
                    .forPath(ClusterPaths.host(hostId));
        } catch (Exception e) {
            log.debug("{}: probe not sent: {}", hostId, e.toString());
        }
    }

    private void fence(Session s, String why) {
        State was = state.getAndSet(State.FENCING);
        if (was == State.CLOSED) {
            state.set(State.CLOSED);
            return;
        }
        cancelFenceTimer();
        if (s.prober != null) {
            s.prober.cancel(false);
        }
        long t0 = System.nanoTime();
        List<String> killed = host.fence(FENCE_REASON);
        fences.incrementAndGet();
        log.warn(
                "{}: fenced ({}): killed {} in {} ms; joining afresh under a new session",
                hostId,
                why,
                killed.isEmpty() ? "no VM" : killed,
                (System.nanoTime() - t0) / 1_000_000);
        ownership.forgetAll();
        // The old session goes for good: closing it deletes what is left of its nodes at once if the
        // ensemble is reachable, otherwise ZooKeeper expires it.
        Thread.ofPlatform().daemon().name("ferry-member-close-" + hostId).start(s.client::close);
        if (state.compareAndSet(State.FENCING, State.JOINING)) {
            openSession();
        }
    }

    private void cancelFenceTimer() {
        if (fenceTimer != null) {
            fenceTimer.cancel(false);
            fenceTimer = null;
        }
    }

    /** Leaves the cluster: the session closes, and with it the registration and any run lock. */
    @Override
    public void close() {
        State was = state.getAndSet(State.CLOSED);
        if (was == State.CLOSED) {
            return;
        }
        events.shutdownNow();
        background.shutdownNow();
        Session s = session;
        if (s != null) {
            s.client.close();
        }
    }
}
