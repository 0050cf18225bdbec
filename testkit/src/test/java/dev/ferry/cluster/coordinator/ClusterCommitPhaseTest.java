package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.AgentConfig;
import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.agent.cluster.ClusterAgent;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.migration.precopy.SenderFaults;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.coordinator.MigrateRequest;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.RecordingDriver;
import dev.ferry.testkit.TcpProxy;
import dev.ferry.testkit.TestCluster;
import io.grpc.Status;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.curator.framework.CuratorFramework;
import org.apache.zookeeper.CreateMode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The commit of a live migration in a cluster (docs/ARCHITECTURE.md, "The commit"), one test per
 * row of its table that {@code CommitConnectionLossTest} does not cover, over real gRPC and a real
 * ZooKeeper server, with faults injected into the source's sender. Every test ends with the run
 * log's verdict: the VM never ran on two hosts at once. {@link QemuClusterCommitPhaseTest} runs the
 * same with QEMU guests.
 */
class ClusterCommitPhaseTest {
    TestCluster cluster;
    CoordinatorClient client;
    private final List<ClusterAgent> ownAgents = new ArrayList<>();
    private final Map<String, TcpProxy> ownProxies = new java.util.HashMap<>();
    private CuratorFramework intruder;

    /** The guest of these tests. */
    VmSpec spec(String name) {
        return TestCluster.spec(name, 16L << 20, 1000);
    }

    /** The driver of a host of these tests, recording to the run log; null for the TestCluster's own (sim). */
    HypervisorDriver driver(String host, Path hostDir) throws Exception {
        return null;
    }

    @BeforeEach
    void up() throws Exception {
        cluster = TestCluster.start();
        cluster.coordinator(Duration.ofMillis(500));
        host("src", true);
        host("dst", false);
        client = cluster.client();
        cluster.create(client, spec("v"), "src");
    }

    /** A host; with {@code viaProxy} its ZooKeeper connection goes through a {@link TcpProxy}. */
    private ClusterAgent host(String name, boolean viaProxy) throws Exception {
        HypervisorDriver d = driver(name, cluster.root.resolve(name + "-native"));
        if (d == null) {
            return cluster.agent(name, Duration.ofSeconds(6), viaProxy);
        }
        String connect = cluster.zk.getConnectString();
        if (viaProxy) {
            TcpProxy p = new TcpProxy(new InetSocketAddress("127.0.0.1", cluster.zk.getPort()));
            ownProxies.put(name, p);
            connect = p.connectString();
        }
        // The same settings as TestCluster.agent, with another driver.
        AgentConfig config = new AgentConfig(
                name,
                Endpoint.parse("127.0.0.1:0"),
                cluster.root.resolve(name + "-data"),
                cluster.root.resolve(name + "-ram"),
                null,
                Transport.plaintext(),
                PreCopySender.Timeouts.defaults().scaled(Timing.multiplier() / 4),
                Timing.seconds(10));
        ClusterAgent a = ClusterAgent.start(
                config,
                new RecordingDriver(d, name, cluster.runLog),
                ZkClients.of(connect, TestCluster.NAME, Timing.seconds(6)),
                new ClusterAgent.Capacity(TestCluster.HOST_MEMORY, TestCluster.HOST_VCPUS, Map.of()),
                Duration.ofMillis(500));
        ownAgents.add(a);
        if (!a.member().awaitMember(Timing.seconds(20))) {
            throw new AssertionError(name + " did not join the cluster");
        }
        return a;
    }

    TcpProxy proxy(String name) {
        return ownProxies.containsKey(name) ? ownProxies.get(name) : cluster.proxy(name);
    }

    ClusterAgent agent(String name) {
        for (ClusterAgent a : ownAgents) {
            if (a.agent().hostId().equals(name)) {
                return a;
            }
        }
        return cluster.agent(name);
    }

    @AfterEach
    void down() throws Exception {
        if (intruder != null) {
            intruder.close();
        }
        for (ClusterAgent a : ownAgents) {
            a.close();
        }
        for (TcpProxy p : ownProxies.values()) {
            p.close();
        }
        if (cluster != null) {
            cluster.close();
        }
    }

    MigrationEvent migrate() {
        return client.migrate(
                MigrateRequest.newBuilder()
                        .setVm("v")
                        .setTargetHost("dst")
                        .setRequestId(UUID.randomUUID().toString())
                        .build(),
                e -> {});
    }

    private ClusterStore store() {
        if (intruder == null) {
            intruder = cluster.zkClients(Duration.ofSeconds(10)).retrying();
            intruder.start();
        }
        return new ClusterStore(intruder);
    }

    private VmRecord record() throws Exception {
        return store().vm("v").orElseThrow().value();
    }

    boolean dstHolds() {
        try (AgentClient dst = new AgentClient(
                Transport.plaintext(), "dst", agent("dst").agent().endpoint(), Duration.ofSeconds(5))) {
            dst.getVm("v");
            return true;
        } catch (AgentCallException e) {
            return e.code() != Status.Code.NOT_FOUND;
        }
    }

    void assertOnlyOn(String host, long epoch) throws Exception {
        Timing.await("v to run on " + host + " only", Duration.ofSeconds(15), () -> {
            try {
                return cluster.runLog.runningOn("v").equals(List.of(host));
            } catch (java.io.IOException e) {
                return false;
            }
        });
        VmView v = client.vm("v");
        assertEquals(host, v.getOwner());
        assertEquals(epoch, v.getEpoch());
        assertEquals(VmState.VM_STATE_RUNNING, v.getState());
        assertTrue(
                cluster.runLog.doubleRuns().isEmpty(),
                cluster.runLog.doubleRuns().toString());
    }

    /** Row "the multi succeeds": COMMITTED, the destination confirms and resumes, the source releases. */
    @Test
    void aCommittedMigrationRunsTheVmOnTheDestinationOnly() throws Exception {
        MigrationEvent end = migrate();
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, end.getSummary().getStatus(), end.toString());
        assertOnlyOn("dst", 2);
    }

    /**
     * Row "the multi fails (the record or lock changed)": the record is rewritten, unchanged, between
     * the source's read and its transaction; the version check fails it, the source reads again,
     * finds itself still at e, not vetoed, and commits.
     */
    @Test
    void aCommitWhoseRecordChangedUnderItReadsAgainAndCommits() throws Exception {
        AtomicBoolean once = new AtomicBoolean();
        agent("src").member().beforeCommitWrite(r -> {
            if (once.compareAndSet(false, true)) {
                try {
                    Versioned<VmRecord> read = store().vm("v").orElseThrow();
                    store().commit(store().set(read.path(), read.value(), read.version()));
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            }
        });
        MigrationEvent end = migrate();
        assertTrue(once.get());
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, end.getSummary().getStatus(), end.toString());
        assertOnlyOn("dst", 2);
    }

    /**
     * Rows "T loses its stream while READY" and "REJECTED": the destination's lanes end once it said
     * Ready; it vetoes the migration in the record before it discards, so the source's commit is
     * refused, and the source (still named at e, holding its lock) resumes.
     */
    @Test
    void aDestinationThatLosesItsLanesAtReadyVetoesTheCommitAndTheSourceRunsOn() throws Exception {
        String[] vetoed = {""};
        agent("src").agent().injectSenderFaults(new SenderFaults() {
            @Override
            public void beforeCommit(Lanes lanes) {
                lanes.cut();
                Timing.await("dst to veto and discard", Duration.ofSeconds(20), () -> {
                    try {
                        vetoed[0] = record().getVetoedMigration();
                        return !vetoed[0].isEmpty() && !dstHolds();
                    } catch (Exception e) {
                        return false;
                    }
                });
            }
        });
        MigrationEvent end = migrate();
        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, end.getSummary().getStatus(), end.toString());
        assertEquals(end.getSummary().getMigrationId(), vetoed[0], "the veto names this migration");
        assertTrue(
                end.getSummary().getError().contains("rejected"),
                end.getSummary().getError());
        assertOnlyOn("src", 1);
        assertTrue(!dstHolds());
    }

    /**
     * Row "S cannot deliver Commit", in a cluster: the record is the authority. The destination,
     * READY, never gets the Commit; the source hears no Resumed and closes its lanes; the
     * destination then asks the record, finds itself named at e+1, takes the lock and resumes; the
     * source asks the record too, and releases.
     */
    @Test
    void aCommitFrameThatNeverArrivesIsSettledByTheRecordAndOnlyTheDestinationRuns() throws Exception {
        agent("src").agent().injectSenderFaults(new SenderFaults() {
            @Override
            public boolean deliverCommit() {
                return false;
            }
        });
        MigrationEvent end = migrate();
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, end.getSummary().getStatus(), end.toString());
        assertOnlyOn("dst", 2);
    }

    /**
     * Row "T cannot take its lock": the record names the destination at e+1, but another session
     * holds the run lock when the Commit arrives. The destination stays paused and resolves again;
     * once the lock is free it takes it and resumes, and the VM never ran on two hosts.
     */
    @Test
    void aDestinationThatCannotTakeTheRunLockStaysPausedUntilItCan() throws Exception {
        AtomicLong released = new AtomicLong();
        agent("src").agent().injectSenderFaults(new SenderFaults() {
            @Override
            public boolean deliverCommit() {
                // Called after the commit's transaction: the record names dst at e+1 and src's lock is gone.
                try {
                    ClusterStore s = store();
                    RunningRecord squatter = RunningRecord.newBuilder()
                            .setSchemaVersion(Records.SCHEMA_VERSION)
                            .setHostId("squatter")
                            .setEpoch(2)
                            .setSinceMs(System.currentTimeMillis())
                            .build();
                    s.commit(s.create(ClusterPaths.running("v"), squatter, CreateMode.EPHEMERAL));
                    Thread.ofPlatform().daemon().start(() -> {
                        try {
                            Thread.sleep(
                                    Timing.seconds(2).toMillis()); // how long the squatter holds it: the fault itself
                            released.set(System.nanoTime());
                            Optional<Versioned<RunningRecord>> held = s.running("v");
                            s.commit(s.delete(
                                    held.orElseThrow().path(), held.get().version()));
                        } catch (Exception e) {
                            released.set(-1);
                        }
                    });
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
                return true;
            }
        });
        MigrationEvent end = migrate();
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, end.getSummary().getStatus(), end.toString());
        assertTrue(released.get() > 0, "the squatter's lock was released");
        assertOnlyOn("dst", 2);
        long dstBegan = cluster.runLog.intervals().stream()
                .filter(i -> i.host().equals("dst") && i.vm().equals("v"))
                .mapToLong(dev.ferry.testkit.RunLog.Interval::begin)
                .min()
                .orElseThrow();
        assertTrue(dstBegan >= released.get(), "dst ran v while another session held its run lock");
        assertEquals("dst", store().running("v").orElseThrow().value().getHostId(), "dst holds the run lock");
    }

    /**
     * Row "the connection drops during the multi" (UNKNOWN), the write having landed: both copies
     * stay paused until the source, reconnected, reads the record; only the destination runs.
     * ({@code CommitConnectionLossTest} pins the same with the sim driver in more detail.)
     */
    @Test
    void aCommitWhoseReplyIsLostIsSettledAsCommittedAndOnlyTheDestinationRuns() throws Exception {
        TcpProxy p = proxy("src");
        agent("src").member().beforeCommitWrite(r -> {
            p.dropRepliesOnOpenConnections();
            p.breakOpenConnectionsAfter(Duration.ofMillis(300));
        });
        MigrationEvent end = migrate();
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, end.getSummary().getStatus(), end.toString());
        assertOnlyOn("dst", 2);
    }

    /** The same row, the write never having arrived: REJECTED, and only the source resumes. */
    @Test
    void aCommitWriteThatNeverArrivedIsSettledAsRejectedAndOnlyTheSourceRuns() throws Exception {
        TcpProxy p = proxy("src");
        agent("src").member().beforeCommitWrite(r -> {
            p.blackholeOpenConnections();
            p.breakOpenConnectionsAfter(Duration.ofMillis(300));
        });
        MigrationEvent end = migrate();
        assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, end.getSummary().getStatus(), end.toString());
        assertOnlyOn("src", 1);
        assertTrue(!dstHolds());
    }

    /**
     * Row "S fenced meanwhile": the source is cut off from ZooKeeper just before its commit write,
     * for longer than its session, so the write never lands and the session expires. S can neither
     * commit nor resume (its lock went with its session, and its lease stops the guest); once the
     * failover margin has passed, the leader restarts v, and v runs exactly once, at a higher epoch.
     */
    @Test
    void aSourceFencedBeforeItsCommitNeitherCommitsNorResumesAndTheVmRunsOnce() throws Exception {
        TcpProxy p = proxy("src");
        java.util.concurrent.atomic.AtomicBoolean cut = new java.util.concurrent.atomic.AtomicBoolean();
        agent("src").member().beforeCommitWrite(r -> {
            if (cut.compareAndSet(false, true)) {
                p.cut();
                Thread.ofPlatform().daemon().start(() -> {
                    try {
                        Thread.sleep(Timing.seconds(18).toMillis()); // three sessions of 6 s
                    } catch (InterruptedException e) {
                        return;
                    }
                    p.heal();
                });
            }
        });
        MigrationEvent end = migrate();
        assertTrue(cut.get(), "the source was cut off at its commit");
        Timing.await("v to run again, once", Duration.ofSeconds(60), () -> {
            try {
                VmView v = client.vm("v");
                return v.getEpoch() >= 2
                        && v.getState() == VmState.VM_STATE_RUNNING
                        && cluster.runLog.runningOn("v").size() == 1;
            } catch (Exception e) {
                return false;
            }
        });
        assertTrue(
                cluster.runLog.doubleRuns().isEmpty(),
                "never two copies: " + cluster.runLog.doubleRuns() + "; the migration ended " + end.getSummary());
    }
}
