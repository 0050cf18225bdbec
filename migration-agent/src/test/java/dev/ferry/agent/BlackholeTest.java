package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.hypervisor.InstanceState;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.hypervisor.sim.SimVm;
import dev.ferry.migration.MigrationException;
import dev.ferry.migration.policy.ConvergencePolicy;
import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.agent.PrepareIncomingResponse;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A TCP proxy sits between the source and the destination agent and, mid-migration, starts
 * swallowing every byte both ways without closing anything: the link or the peer is gone without a
 * word. Within a bounded time the destination must let go of the VM (its name, its RAM file) on its
 * own, and the source must fail the migration and run on with its memory intact.
 */
class BlackholeTest {
    private static final VmSpec SPEC = AgentPair.busyGuest("vm1", 64L << 20, 3000);

    private AgentPair pair;
    private SimVm source;
    private TcpProxy proxy;
    private AgentClient toB;

    private void start(UnaryOperator<AgentConfig> destination) throws Exception {
        pair = new AgentPair(
                Transport.plaintext(),
                dir -> new SimDriver(),
                c -> c.hostId().equals("host-b") ? destination.apply(c) : c);
        source = (SimVm)
                new SimDriver().create(SPEC, new VmPaths(pair.root.resolve("src-run"), pair.root.resolve("src.ram")));
        source.start();
        Timing.await("guest runs", Duration.ofSeconds(10), () -> source.heartbeat() > 3);
        Endpoint.Tcp b = (Endpoint.Tcp) pair.b.endpoint();
        proxy = new TcpProxy(new InetSocketAddress(b.host(), b.port()));
        // The source reaches the destination's control API through the proxy too: once the link is
        // a blackhole, its abandon is lost like everything else.
        toB = new AgentClient(Transport.plaintext(), "host-b", Endpoint.parse(proxy.endpoint()), Timing.seconds(3));
    }

    @AfterEach
    void stop() throws Exception {
        if (toB != null) {
            toB.close();
        }
        if (proxy != null) {
            proxy.close();
        }
        if (source != null) {
            source.close();
        }
        if (pair != null) {
            pair.close();
        }
    }

    /**
     * Runs a migration of the source VM to B through the proxy, which turns into a blackhole at the
     * first event {@code when} accepts. Returns the migration's outcome once the blackhole is on.
     */
    private CompletableFuture<MigrationException> migrateIntoBlackhole(Predicate<MigrationEvent> when)
            throws Exception {
        CompletableFuture<Void> blackholed = new CompletableFuture<>();
        PreCopySender.Options options = new PreCopySender.Options(
                2,
                16L << 20, // 64 MiB at 16 MiB/s: round 0 takes about four seconds
                false,
                new ConvergencePolicy.Settings(
                        Duration.ofMillis(50),
                        20,
                        Duration.ofSeconds(60),
                        5,
                        ConvergencePolicy.OnTimeout.FORCE_SWITCHOVER),
                TransferMode.TRANSFER_MODE_PRECOPY,
                new PreCopySender.Timeouts(
                        Timing.seconds(5),
                        Timing.seconds(10),
                        Timing.seconds(5),
                        Timing.seconds(5),
                        Timing.seconds(3)));
        PreCopySender sender = new PreCopySender(
                new PreCopySender.Parties(UUID.randomUUID().toString(), "vm1", "host-a", "host-b", 1),
                source,
                options,
                Transport.plaintext(),
                new PreCopySender.TargetPreparer() {
                    @Override
                    public PrepareIncomingResponse prepare(PrepareIncomingRequest request) throws MigrationException {
                        try {
                            // The lanes go through the proxy as well.
                            return toB.prepareIncoming(request).toBuilder()
                                    .setStreamEndpoint(proxy.endpoint())
                                    .build();
                        } catch (AgentCallException e) {
                            throw new MigrationException(MigrationStep.MIGRATION_STEP_PREPARE, e.getMessage(), e);
                        }
                    }

                    @Override
                    public void abandon(String migrationId, String reason) {
                        try {
                            toB.cancelIncoming("vm1", migrationId, reason);
                        } catch (AgentCallException lost) {
                            // into the blackhole
                        }
                    }
                },
                CommitProvider.local().outgoing(toB),
                e -> {
                    if (!blackholed.isDone() && when.test(e)) {
                        proxy.blackhole();
                        blackholed.complete(null);
                    }
                });
        CompletableFuture<MigrationException> outcome = CompletableFuture.supplyAsync(() -> {
            try {
                sender.run();
                return null;
            } catch (MigrationException e) {
                return e;
            }
        });
        CompletableFuture.anyOf(blackholed, outcome).get(Timing.seconds(30).toMillis(), TimeUnit.MILLISECONDS);
        assertTrue(blackholed.isDone(), "the migration ended before the blackhole: " + outcome.getNow(null));
        return outcome;
    }

    private static boolean midPreCopy(MigrationEvent e) {
        return e.getPhase() == MigrationPhase.MIGRATION_PHASE_ROUND
                && e.hasRound()
                && e.getRound().getPartial()
                && e.getRound().getPagesSent() > 0;
    }

    /** Within {@code bound} of now, B holds neither the VM nor its RAM file, and takes the VM again. */
    private void assertDestinationLetGo(Duration bound) throws Exception {
        Timing.await("the destination lets go of the VM", bound, () -> {
            try {
                return pair.clientB.listVms().isEmpty() && pair.ramFiles(pair.b) == 0;
            } catch (Exception e) {
                return false;
            }
        });
        PrepareIncomingResponse again = pair.clientB.prepareIncoming(PrepareIncomingRequest.newBuilder()
                .setMigrationId("again")
                .setSpec(SPEC)
                .setSourceHost("host-a")
                .setMode(TransferMode.TRANSFER_MODE_PRECOPY)
                .setEpoch(1)
                .build());
        assertFalse(again.getToken().isEmpty(), "a new migration of the same VM is accepted");
    }

    /** The migration failed at a step before the commit, and the source runs on with its memory intact. */
    private void assertSourceRunsIntact(CompletableFuture<MigrationException> outcome, Duration bound)
            throws Exception {
        MigrationException e;
        try {
            e = outcome.get(Timing.scaled(bound).toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException ex) {
            throw new AssertionError("the migration broke instead of failing", ex.getCause());
        }
        assertInstanceOf(MigrationException.class, e, "the migration must fail");
        assertTrue(e.step().getNumber() < MigrationStep.MIGRATION_STEP_COMMIT.getNumber(), e.getMessage());
        assertEquals(InstanceState.RUNNING, source.state(), e.getMessage());
        long beat = source.heartbeat();
        Timing.await("the source keeps running", Duration.ofSeconds(5), () -> source.heartbeat() > beat + 3);
        source.pause();
        try {
            assertTrue(source.verifyMemory().ok(), "source memory: " + source.verifyMemory());
        } finally {
            source.resume();
        }
        assertEquals(0, source.staleReads(), "the guest found no page it did not write");
    }

    /**
     * With the idle deadline out of the way, only the destination server's HTTP/2 keepalive can tell
     * that the source is gone: its ping goes unanswered and the lanes' calls end.
     */
    @Test
    void aSourceBlackholedMidPreCopyIsLetGoOfByTheDestinationsKeepalive() throws Exception {
        Transport.Keepalive keepalive = new Transport.Keepalive(Duration.ofSeconds(10), Timing.seconds(1));
        start(c -> c.withIdleTimeout(Duration.ofMinutes(10)).withKeepalive(keepalive));
        CompletableFuture<MigrationException> outcome = migrateIntoBlackhole(BlackholeTest::midPreCopy);
        // gRPC pings after at least 10 s without a read; then the answer's timeout; then the discard.
        assertDestinationLetGo(keepalive.time().plus(keepalive.timeout()).plusSeconds(5));
        assertSourceRunsIntact(outcome, Duration.ofSeconds(15));
    }

    /**
     * With keepalive out of the way (a connection that stays up, say, with a frozen source behind it),
     * the idle deadline lets go of the VM.
     */
    @Test
    void aSourceBlackholedMidPreCopyIsLetGoOfAtTheIdleDeadline() throws Exception {
        Duration idle = Timing.seconds(2);
        start(c -> c.withIdleTimeout(idle)
                .withKeepalive(new Transport.Keepalive(Duration.ofHours(1), Duration.ofHours(1))));
        CompletableFuture<MigrationException> outcome = migrateIntoBlackhole(BlackholeTest::midPreCopy);
        assertDestinationLetGo(idle.plusSeconds(5));
        assertSourceRunsIntact(outcome, Duration.ofSeconds(15));
    }

    /**
     * The destination goes dark while the source is paused in its switchover: the source must not wait
     * for it beyond its deadlines, must resume, and the destination discards on its side.
     */
    @Test
    void aDestinationBlackholedInTheSwitchoverLeavesTheSourceRunning() throws Exception {
        Duration idle = Timing.seconds(2);
        start(c -> c.withIdleTimeout(idle));
        CompletableFuture<MigrationException> outcome =
                migrateIntoBlackhole(e -> e.getPhase() == MigrationPhase.MIGRATION_PHASE_SWITCHOVER);
        // Paused, the source waits at most its ready timeout (10 s here) for a destination that does not answer.
        assertSourceRunsIntact(outcome, Duration.ofSeconds(20));
        MigrationException e = outcome.get(Timing.seconds(60).toMillis(), java.util.concurrent.TimeUnit.MILLISECONDS);
        assertTrue(
                e.step().getNumber() >= MigrationStep.MIGRATION_STEP_PAUSE.getNumber(),
                "failed in the switchover: " + e.getMessage());
        assertDestinationLetGo(idle.plusSeconds(5));
    }
}
