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
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
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
 * {@code /hosts/<id>}, the evidence that keeps its guests' leases current, and the fence.
 *
 * <p>The session is the host's lease on its VMs. While it lives, the host's ephemeral nodes (its
 * registration and the run locks of its VMs) keep every other host from starting those VMs, and
 * ZooKeeper cannot expire it before T (the session timeout) after it last heard from the host. So
 * a probe that ZooKeeper answered, sent at P, proves nobody can restart this host's VMs before P +
 * T (+ the coordinator's failover margin): each guest's lease runs to P + 5T/6 ({@link
 * FencePolicy#leaseValidity}), renewed with every answered probe. That lease is enforced below the
 * agent (the hypervisor stops the guest at the deadline by itself), so a frozen or dead agent
 * cannot leave a guest running into a restart elsewhere.
 *
 * <p>When the client loses its connection (Curator SUSPENDED) the host starts nothing, commits
 * nothing, and asks the coordinator replicas whether they can reach ZooKeeper ({@link
 * OutageWitnesses}): if none can, and each promises to decide no restart for a while, nobody can
 * start this host's VMs elsewhere meanwhile and the guests run on, their leases extended by those
 * promises, for at most the outage hold; if one can, this host alone is cut off. When the lease
 * deadline passes it fences: every guest freezes (FENCED), nothing is killed. Reconnected to the
 * same session, it carries on (the run locks never went away). Told the session is gone (LOST, or
 * reconnected under another one), it joins afresh under a new session and asks, VM by VM, whether
 * it still owns what it froze ({@link Ownership#reclaim}): the guest runs on, or is killed when
 * the cluster has given it to another host.
 *
 * <p>A restarted agent resumes its predecessor's session (id and password in {@code
 * <data-dir>/cluster-session}) if it has not expired: its registration and its guests' run locks
 * carry over, and the guests it adopts run on without a pause.
 *
 * <p>State changes run on one thread, in the order Curator reports them. Lifecycle: LATENT, then
 * {@link #start}, then {@link #close} (CLOSED); in between JOINING, MEMBER, SUSPENDED, FENCED.
 */
public final class ClusterMember implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(ClusterMember.class);

    /** The reason every fenced VM carries. */
    public static final String FENCE_REASON = "fenced: lost the cluster session";

    /** The file a restarted agent finds its predecessor's session in. */
    public static final String SESSION_FILE = "cluster-session";

    public enum State {
        LATENT,
        /** Connecting and registering; trusts nothing. */
        JOINING,
        /** Registered; runs what the cluster gives it. */
        MEMBER,
        /** Connection lost; starts and commits nothing; guests run on only as far as the evidence reaches. */
        SUSPENDED,
        /** The evidence ran out: every guest frozen, waiting to learn whether this host still owns it. */
        FENCED,
        CLOSED
    }

    /** What the member needs of its agent. */
    public interface Host {
        /** The registration record (endpoint, capacity, labels, driver). */
        HostRecord describe();

        /** Freezes every guest with {@code reason}; returns their names. */
        List<String> fence(String reason);

        /** For every frozen VM: this host's again (runs on), another's (killed), or unknown yet. */
        Map<String, String> reclaim();

        /** True while a frozen VM waits for {@link #reclaim}. */
        boolean anyFenced();

        /** True while {@code vm} runs, is paused or frozen here and so needs its run lock. */
        boolean holds(String vm);
    }

    /**
     * @param sessionFile where the session id and password are kept for a restarted agent, or null
     * @param witnesses asks coordinator replicas during a loss of contact, or null (no hold)
     * @param outageHold the longest a host keeps its guests running on witnesses' promises alone
     */
    public record Options(Path sessionFile, OutageWitnesses witnesses, Duration outageHold) {
        public static Options none() {
            return new Options(null, null, Duration.ZERO);
        }
    }

    /** One ZooKeeper session and what was learned about it. */
    static final class Session {
        final CuratorFramework client;
        final ClusterStore store;
        volatile long id;
        volatile Duration timeout;
        /** Send time (monotonic) of the last probe ZooKeeper answered: the server saw us no earlier. */
        final AtomicLong lastAnsweredProbe = new AtomicLong(Long.MIN_VALUE);
        /** Until when (monotonic) every coordinator replica promised no restart: an outage being ridden out. */
        final AtomicLong heldUntil = new AtomicLong(Long.MIN_VALUE);

        volatile ScheduledFuture<?> prober;
        /** The session's password once joined: what resuming it after a local expiry needs. */
        volatile byte[] password;
        /** ZooKeeper's client gave this session up during a proven outage; it is to be resumed. */
        volatile boolean givenUp;
        /** This client resumes its predecessor's session after ZooKeeper's client gave it up during an outage. */
        volatile boolean resumed;

        Session(CuratorFramework client) {
            this.client = client;
            this.store = new ClusterStore(client);
        }
    }

    private final ZkClients zk;
    private final String hostId;
    private final Duration auditInterval;
    private final Options options;
    private final ScheduledExecutorService events;
    private final ScheduledExecutorService background;
    private final AtomicReference<State> state = new AtomicReference<>(State.LATENT);
    private final ZkOwnership ownership;
    private final ZkOwnershipCommit commit;
    private final AtomicLong fences = new AtomicLong();
    private volatile Session session;
    private volatile Host host;
    private ScheduledFuture<?> outageTicker;
    private long suspendedAtNanos;
    private long lastWitnessNanos;
    private boolean witnessBusy;
    private boolean waitingLogged;
    private boolean firstSession = true;
    private volatile Consumer<CommitRequest> beforeCommitWrite = r -> {};

    /**
     * @param auditInterval how often the member checks that it holds run locks only for VMs that
     *     run here (a lock whose release was lost, or taken by a start that then failed)
     */
    public ClusterMember(ZkClients zk, String hostId, Duration auditInterval, Options options) {
        this.zk = zk;
        this.hostId = ClusterPaths.checkName("host id", hostId);
        this.auditInterval = auditInterval;
        this.options = options;
        this.events = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().daemon().name("ferry-member-" + hostId).factory());
        this.background = Executors.newScheduledThreadPool(
                2,
                Thread.ofPlatform()
                        .daemon()
                        .name("ferry-member-bg-" + hostId, 0)
                        .factory());
        this.ownership = new ZkOwnership(this);
        this.commit = new ZkOwnershipCommit(this);
    }

    public ClusterMember(ZkClients zk, String hostId, Duration auditInterval) {
        this(zk, hostId, auditInterval, Options.none());
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

    /** The current session's id, or 0 (tests and diagnostics). */
    public long sessionId() {
        Session s = session;
        return s == null ? 0 : s.id;
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
        background.scheduleWithFixedDelay(this::reclaimIfFenced, 500, 500, TimeUnit.MILLISECONDS);
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

    /**
     * How far this host's evidence for {@code s} reaches (System.nanoTime), or 0: the last answered
     * probe's send time + 5T/6, or the witnesses' promises during an outage, whichever is later;
     * nothing once the member has fenced or the session is not the current one.
     */
    long leaseDeadline(Session s) {
        State st = state.get();
        if (s == null || s != session || (st != State.MEMBER && st != State.SUSPENDED)) {
            return 0;
        }
        long p = s.lastAnsweredProbe.get();
        long fromProbe = p == Long.MIN_VALUE
                ? Long.MIN_VALUE
                : p + FencePolicy.leaseValidity(s.timeout).toNanos();
        long d = Math.max(fromProbe, s.heldUntil.get());
        return d == Long.MIN_VALUE ? 0 : d;
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
        CuratorFramework client = null;
        if (firstSession) {
            firstSession = false;
            SavedSession saved = readSessionFile();
            if (saved != null) {
                log.info(
                        "{}: resuming the session 0x{} of an earlier agent process",
                        hostId,
                        Long.toHexString(saved.id));
                client = zk.singleAttemptResuming(saved.id, saved.password);
            }
        }
        if (client == null) {
            client = zk.singleAttempt();
        }
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
            case CONNECTED -> {
                if (s.resumed && s.prober == null) {
                    // The resuming client's first connection: same session, or the ensemble expired it.
                    long now = s.store.sessionId();
                    if (now != s.id) {
                        sessionGone(s, "session 0x" + Long.toHexString(s.id) + " could not be resumed");
                    } else {
                        backInTouch(s, now);
                    }
                } else {
                    tryRegister(s);
                }
            }
            case SUSPENDED -> {
                if (state.compareAndSet(State.MEMBER, State.SUSPENDED)) {
                    suspendedAtNanos = System.nanoTime();
                    lastWitnessNanos = Long.MIN_VALUE;
                    long tick = Math.max(20, Math.min(100, s.timeout.toMillis() / 40));
                    outageTicker = events.scheduleWithFixedDelay(() -> outageTick(s), 0, tick, TimeUnit.MILLISECONDS);
                    log.warn(
                            "{}: lost contact with ZooKeeper (session 0x{}); guests run on for {} ms unless it comes back "
                                    + "or every coordinator confirms an outage",
                            hostId,
                            Long.toHexString(s.id),
                            Math.max(0, (leaseDeadline(s) - suspendedAtNanos) / 1_000_000));
                }
            }
            case RECONNECTED -> {
                long now = s.store.sessionId();
                State st = state.get();
                if (now != s.id) {
                    sessionGone(s, "the session was replaced (0x" + Long.toHexString(s.id) + " expired)");
                } else if (st == State.SUSPENDED || st == State.FENCED) {
                    backInTouch(s, now);
                } else if (st == State.JOINING) {
                    tryRegister(s);
                }
            }
            case LOST -> {
                State st = state.get();
                if (st == State.SUSPENDED
                        && !s.resumed
                        && s.password != null
                        && s.heldUntil.get() - System.nanoTime() > 0) {
                    // Resumed once a coordinator reaches ZooKeeper again: a handle started now would
                    // give the session up again after another session timeout of silence.
                    s.givenUp = true;
                    log.warn(
                            "{}: ZooKeeper's client gave session 0x{} up after {} ms without an answer; the outage is "
                                    + "proven, so guests run on, and the session is resumed when the ensemble is back",
                            hostId,
                            Long.toHexString(s.id),
                            (System.nanoTime() - suspendedAtNanos) / 1_000_000);
                } else if (st == State.MEMBER || st == State.SUSPENDED || st == State.FENCED) {
                    sessionGone(s, "the session expired");
                }
            }
            default -> {}
        }
    }

    /** Connected again to the session it had: a member again, its leases renewed by a probe now. */
    private void backInTouch(Session s, long id) {
        State st = state.get();
        // Resumed and held again: the next outage may be ridden out the same way.
        s.resumed = false;
        s.givenUp = false;
        stopOutageTicker();
        s.heldUntil.set(Long.MIN_VALUE);
        state.set(State.MEMBER);
        if (s.prober == null) {
            long every = FencePolicy.probeInterval(s.timeout).toMillis();
            s.prober = background.scheduleWithFixedDelay(() -> probe(s), 0, every, TimeUnit.MILLISECONDS);
        }
        log.info(
                "{}: back in touch with ZooKeeper after {} ms; session 0x{} kept{}",
                hostId,
                (System.nanoTime() - suspendedAtNanos) / 1_000_000,
                Long.toHexString(id),
                st == State.FENCED ? "; its frozen guests run on once confirmed" : ", nothing fenced");
        // A probe now, so that the leases renew without waiting for the next one.
        background.execute(() -> probe(s));
    }

    /**
     * ZooKeeper's client (3.9) closes a session on its own once it has heard nothing from any
     * server for the session timeout, and Curator reports LOST; during a whole-ensemble outage that
     * is not the ensemble's word (with no quorum nobody can expire a session, and the witnesses
     * promised no restart). So while the promise holds, the guests run on and a new client asks to
     * resume the same session (id and password) when the ensemble is back: if the ensemble kept it,
     * the run locks never went away and nothing was fenced; if it expired it, the client hears so
     * and the member fences and rejoins as for any lost session. The lease still ends the guests if
     * the promise runs out first. Chaos scenarios 9 and 10 found every guest frozen without this.
     */
    private void resumeAfterOutage(Session old) {
        CuratorFramework client = zk.singleAttemptResuming(old.id, old.password);
        Session s = new Session(client);
        s.id = old.id;
        s.timeout = old.timeout;
        s.password = old.password;
        s.resumed = true;
        s.lastAnsweredProbe.set(old.lastAnsweredProbe.get());
        s.heldUntil.set(old.heldUntil.get());
        if (old.prober != null) {
            old.prober.cancel(false);
        }
        client.getConnectionStateListenable().addListener((c, newState) -> events.execute(() -> onState(s, newState)));
        session = s;
        stopOutageTicker();
        long tick = Math.max(20, Math.min(100, s.timeout.toMillis() / 40));
        outageTicker = events.scheduleWithFixedDelay(() -> outageTick(s), 0, tick, TimeUnit.MILLISECONDS);
        log.info("{}: a coordinator reaches ZooKeeper again: resuming session 0x{}", hostId, Long.toHexString(s.id));
        client.start();
        Thread.ofPlatform().daemon().name("ferry-member-close-" + hostId).start(old.client::close);
    }

    /** While SUSPENDED: fence once the evidence runs out; meanwhile ask the witnesses now and then. */
    private void outageTick(Session s) {
        if (s != session || state.get() != State.SUSPENDED) {
            return;
        }
        long now = System.nanoTime();
        if (now - leaseDeadline(s) >= 0 && s.givenUp) {
            // No client holds the session any more: fence and join afresh, as for a lost session.
            sessionGone(s, "the outage outlasted the witnesses' promise");
            return;
        }
        if (now - leaseDeadline(s) >= 0) {
            fence(
                    s,
                    "no contact with ZooKeeper for " + (now - suspendedAtNanos) / 1_000_000
                            + " ms after the connection was lost, and no proof of an outage");
            return;
        }
        OutageWitnesses w = options.witnesses();
        long every = FencePolicy.probeInterval(s.timeout).toNanos();
        if (w != null && !witnessBusy && (lastWitnessNanos == Long.MIN_VALUE || now - lastWitnessNanos >= every)) {
            witnessBusy = true;
            lastWitnessNanos = now;
            background.execute(() -> askWitnesses(s, w));
        }
    }

    private void askWitnesses(Session s, OutageWitnesses w) {
        OutageWitnesses.Answer a;
        try {
            a = w.ask(Duration.ofMillis(Math.max(200, Math.min(1000, s.timeout.toMillis() / 6))));
        } catch (RuntimeException e) {
            a = new OutageWitnesses.Answer(OutageWitnesses.Verdict.UNKNOWN, Long.MIN_VALUE, e.toString());
        }
        OutageWitnesses.Answer answer = a;
        events.execute(() -> {
            witnessBusy = false;
            if (s != session || state.get() != State.SUSPENDED) {
                return;
            }
            switch (answer.verdict()) {
                case OUTAGE -> {
                    long p = s.lastAnsweredProbe.get();
                    long cap = (p == Long.MIN_VALUE ? suspendedAtNanos : p)
                            + options.outageHold().toNanos();
                    long until = Math.min(answer.until(), cap);
                    long was = s.heldUntil.getAndAccumulate(until, Math::max);
                    if (was == Long.MIN_VALUE && until > System.nanoTime()) {
                        log.warn(
                                "{}: the whole cluster has lost ZooKeeper ({}); guests keep running (at most {} s)",
                                hostId,
                                answer.detail(),
                                options.outageHold().toSeconds());
                    }
                }
                case ISOLATED -> {
                    if (s.givenUp) {
                        resumeAfterOutage(s);
                    } else {
                        log.warn(
                                "{}: cut off from ZooKeeper on its own ({}); guests stop when their leases end",
                                hostId,
                                answer.detail());
                    }
                }
                case UNKNOWN -> log.debug("{}: outage not proven: {}", hostId, answer.detail());
            }
        });
    }

    private void stopOutageTicker() {
        if (outageTicker != null) {
            outageTicker.cancel(false);
            outageTicker = null;
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
            long sent = System.nanoTime();
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
                // Our own registration, from the session this process resumed: bring it up to date
                // (the endpoint may have changed with the restart).
                s.client.setData().withVersion(stat.getVersion()).forPath(path, Records.encode(record));
            }
            if (s.store.sessionId() != s.id) {
                // The session changed under us while registering: start over with the new one.
                events.schedule(() -> tryRegister(s), 50, TimeUnit.MILLISECONDS);
                return;
            }
            // The registration was answered: the server saw the session after `sent`.
            s.lastAnsweredProbe.accumulateAndGet(sent, Math::max);
            s.password = s.client.getZookeeperClient().getZooKeeper().getSessionPasswd();
            if (state.compareAndSet(State.JOINING, State.MEMBER)) {
                long every = FencePolicy.probeInterval(s.timeout).toMillis();
                s.prober = background.scheduleWithFixedDelay(() -> probe(s), 0, every, TimeUnit.MILLISECONDS);
                writeSessionFile(s);
                log.info(
                        "{}: joined the cluster (session 0x{}, timeout {} ms; guests' leases run {} ms past each answered "
                                + "probe)",
                        hostId,
                        Long.toHexString(s.id),
                        s.timeout.toMillis(),
                        FencePolicy.leaseValidity(s.timeout).toMillis());
                background.execute(() -> refreshReplicas(s));
            }
        } catch (Exception e) {
            log.debug("{}: registration attempt failed: {}", hostId, e.toString());
            events.schedule(() -> tryRegister(s), 500, TimeUnit.MILLISECONDS);
        }
    }

    /**
     * Proves the session alive: a read answered by ZooKeeper means the server saw the session no
     * earlier than when the read was sent. Stops with its session. Every few probes, also reads
     * who the coordinator replicas are, for the witnesses.
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
        if (probes.incrementAndGet() % 6 == 0) {
            refreshReplicas(s);
        }
    }

    private final AtomicLong probes = new AtomicLong();

    /** Reads the coordinator replicas (the leader latch's participants) for the witnesses. */
    private void refreshReplicas(Session s) {
        OutageWitnesses w = options.witnesses();
        if (w == null || s != session || state.get() != State.MEMBER) {
            return;
        }
        try {
            List<String> found = new ArrayList<>();
            for (String child : s.client.getChildren().forPath(ClusterPaths.LEADER)) {
                try {
                    byte[] id = s.client.getData().forPath(ClusterPaths.LEADER + "/" + child);
                    String endpoint = new String(id, StandardCharsets.UTF_8).trim();
                    if (!endpoint.isEmpty() && !found.contains(endpoint)) {
                        found.add(endpoint);
                    }
                } catch (KeeperException.NoNodeException gone) {
                    // that replica just left
                }
            }
            found.sort(null);
            if (!found.equals(w.replicas())) {
                log.info("{}: coordinator replicas to ask during an outage: {}", hostId, found);
            }
            w.replicas(found);
        } catch (KeeperException.NoNodeException e) {
            w.replicas(List.of());
        } catch (Exception e) {
            log.debug("{}: cannot read the coordinator replicas: {}", hostId, e.toString());
        }
    }

    /** The evidence ran out: every guest freezes; the session may still come back. */
    private void fence(Session s, String why) {
        if (!state.compareAndSet(State.SUSPENDED, State.FENCED)) {
            return;
        }
        stopOutageTicker();
        long t0 = System.nanoTime();
        List<String> frozen = host.fence(FENCE_REASON);
        fences.incrementAndGet();
        log.warn(
                "{}: fenced ({}): froze {} in {} ms; they run on if the cluster confirms this host still owns them",
                hostId,
                why,
                frozen.isEmpty() ? "no VM" : frozen,
                (System.nanoTime() - t0) / 1_000_000);
    }

    /** The session is gone for good: freeze what still runs, then join afresh under a new session. */
    private void sessionGone(Session s, String why) {
        State was = state.getAndSet(State.FENCED);
        if (was == State.CLOSED) {
            state.set(State.CLOSED);
            return;
        }
        stopOutageTicker();
        if (was != State.FENCED) {
            List<String> frozen = host.fence(FENCE_REASON);
            fences.incrementAndGet();
            log.warn(
                    "{}: fenced ({}): froze {}; joining afresh under a new session",
                    hostId,
                    why,
                    frozen.isEmpty() ? "no VM" : frozen);
        } else {
            log.warn("{}: {}; joining afresh under a new session", hostId, why);
        }
        if (s.prober != null) {
            s.prober.cancel(false);
        }
        ownership.forgetAll();
        deleteSessionFile();
        // The old session goes for good: closing it deletes what is left of its nodes at once if the
        // ensemble is reachable, otherwise ZooKeeper expires it.
        Thread.ofPlatform().daemon().name("ferry-member-close-" + hostId).start(s.client::close);
        if (state.compareAndSet(State.FENCED, State.JOINING)) {
            openSession();
        }
    }

    /** While a member, frozen guests are asked about until each is settled. */
    private void reclaimIfFenced() {
        Host h = host;
        if (h == null || state.get() != State.MEMBER || !h.anyFenced()) {
            return;
        }
        try {
            Map<String, String> outcome = h.reclaim();
            if (!outcome.isEmpty()) {
                log.info("{}: frozen guests: {}", hostId, outcome);
            }
        } catch (RuntimeException e) {
            log.warn("{}: reclaiming frozen guests failed: {}", hostId, e.toString());
        }
    }

    // ---- the session file of a restarted agent

    private record SavedSession(long id, byte[] password) {}

    private SavedSession readSessionFile() {
        Path f = options.sessionFile();
        if (f == null || !Files.exists(f)) {
            return null;
        }
        try {
            String[] parts =
                    Files.readString(f, StandardCharsets.US_ASCII).trim().split(" ");
            return new SavedSession(
                    Long.parseUnsignedLong(parts[0], 16), HexFormat.of().parseHex(parts[1]));
        } catch (IOException | RuntimeException e) {
            log.warn("{}: ignoring an unreadable {}: {}", hostId, f, e.toString());
            return null;
        }
    }

    private void writeSessionFile(Session s) {
        Path f = options.sessionFile();
        if (f == null) {
            return;
        }
        try {
            byte[] password = s.client.getZookeeperClient().getZooKeeper().getSessionPasswd();
            Path tmp = f.resolveSibling(f.getFileName() + ".tmp");
            Files.deleteIfExists(tmp);
            // The password lets whoever reads it act as this host in ZooKeeper: owner-only.
            Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
            Files.writeString(
                    tmp,
                    Long.toHexString(s.id) + " " + HexFormat.of().formatHex(password) + "\n",
                    StandardCharsets.US_ASCII);
            Files.move(tmp, f, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (Exception e) {
            log.warn("{}: cannot keep the session for a restarted agent: {}", hostId, e.toString());
        }
    }

    private void deleteSessionFile() {
        Path f = options.sessionFile();
        if (f != null) {
            try {
                Files.deleteIfExists(f);
            } catch (IOException e) {
                log.debug("{}: cannot delete {}: {}", hostId, f, e.toString());
            }
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
        deleteSessionFile();
        if (options.witnesses() != null) {
            options.witnesses().close();
        }
    }

    /**
     * Leaves for a restart (an upgrade): the session is not closed, so the registration and the run
     * locks of the guests left running stay until the next agent process resumes the session (or
     * ZooKeeper expires it). The process should exit soon after: the client's connection stays open
     * until then.
     */
    public void abandon() {
        State was = state.getAndSet(State.CLOSED);
        if (was == State.CLOSED) {
            return;
        }
        events.shutdownNow();
        background.shutdownNow();
        if (options.witnesses() != null) {
            options.witnesses().close();
        }
        log.info("{}: leaving session 0x{} open for the next agent process", hostId, Long.toHexString(sessionId()));
    }
}
