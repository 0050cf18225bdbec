package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
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
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.agent.PrepareIncomingResponse;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ForwardingClientCall;
import io.grpc.MethodDescriptor;
import java.time.Duration;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Every way a migration can fail before its commit must leave the source VM running, untouched,
 * and the destination without the VM or its files; the error names the step.
 */
class MigrationFailureTest {
    private AgentPair pair;
    private SimVm source;
    private AgentClient toB;

    @BeforeEach
    void start() throws Exception {
        pair = new AgentPair();
        VmSpec spec = AgentPair.busyGuest("vm1", 64L << 20, 3000);
        source = (SimVm)
                new SimDriver().create(spec, new VmPaths(pair.root.resolve("src-run"), pair.root.resolve("src.ram")));
        source.start();
        toB = pair.clientB;
        Timing.await("guest runs", Duration.ofSeconds(10), () -> source.heartbeat() > 3);
    }

    @AfterEach
    void stop() throws Exception {
        source.close();
        pair.close();
    }

    private PreCopySender sender(
            Transport transport,
            long maxBandwidth,
            Consumer<PreCopySender> onPrepare,
            java.util.function.BiConsumer<PreCopySender, MigrationEvent> onEvent) {
        PreCopySender[] self = new PreCopySender[1];
        PreCopySender.Options options = new PreCopySender.Options(
                2,
                maxBandwidth,
                true,
                new ConvergencePolicy.Settings(
                        Duration.ofMillis(50),
                        20,
                        Duration.ofSeconds(60),
                        5,
                        ConvergencePolicy.OnTimeout.FORCE_SWITCHOVER),
                TransferMode.TRANSFER_MODE_PRECOPY,
                PreCopySender.Timeouts.defaults().scaled(Timing.multiplier() / 4));
        self[0] = new PreCopySender(
                new PreCopySender.Parties(UUID.randomUUID().toString(), "vm1", "host-a", "host-b", 1),
                source,
                options,
                transport,
                new PreCopySender.TargetPreparer() {
                    @Override
                    public PrepareIncomingResponse prepare(PrepareIncomingRequest request) throws MigrationException {
                        PrepareIncomingResponse r;
                        try {
                            r = toB.prepareIncoming(request);
                        } catch (AgentCallException e) {
                            throw new MigrationException(MigrationStep.MIGRATION_STEP_PREPARE, e.getMessage(), e);
                        }
                        onPrepare.accept(self[0]);
                        return r;
                    }

                    @Override
                    public void abandon(String migrationId, String reason) {
                        try {
                            toB.cancelIncoming("vm1", migrationId, reason);
                        } catch (AgentCallException ignored) {
                            // already gone
                        }
                    }
                },
                CommitProvider.local().outgoing(toB),
                e -> onEvent.accept(self[0], e));
        return self[0];
    }

    /**
     * The source runs and keeps writing; B holds neither the VM nor any file of it (RAM file, run
     * directory: a prepare refused for want of room once left its run directory behind).
     */
    private void assertSourceRunningAndDestinationClean() throws Exception {
        assertEquals(InstanceState.RUNNING, source.state());
        long beat = source.heartbeat();
        Timing.await("source keeps running", Duration.ofSeconds(5), () -> source.heartbeat() > beat + 3);
        Timing.await("destination discards", Duration.ofSeconds(10), () -> {
            try {
                return pair.clientB.listVms().isEmpty() && pair.ramFiles(pair.b) == 0 && pair.runDirs(pair.b) == 0;
            } catch (Exception e) {
                return false;
            }
        });
        assertEquals(0, source.staleReads());
    }

    private MigrationException runExpectingFailure(PreCopySender s) {
        return assertThrows(MigrationException.class, s::run);
    }

    /** A destination without room for the guest's RAM refuses it before anything moves. */
    @Test
    void aDestinationWithoutRoomForTheGuestFailsAtPrepare() throws Exception {
        try (SmallTmpfs small = SmallTmpfs.mount(pair.root.resolve("host-b-ram"), 48L << 20)) {
            MigrationException e = runExpectingFailure(sender(Transport.plaintext(), 0, x -> {}, (x, ev) -> {}));
            assertEquals(MigrationStep.MIGRATION_STEP_PREPARE, e.step());
            assertTrue(e.getMessage().contains("48 MiB free, the guest needs 64 MiB"), e.getMessage());
            assertFalse(e.getMessage().contains("internal error"), e.getMessage());
            assertSourceRunningAndDestinationClean();
        }
    }

    /**
     * The destination's memory runs out while pages arrive (something else took it after the
     * migration was prepared): the write fails with ENOSPC, the migration fails at pre-copy, the
     * source keeps running and the destination discards what it had.
     */
    @Test
    void aDestinationThatRunsOutOfMemoryMidStreamLosesNothing() throws Exception {
        try (SmallTmpfs small = SmallTmpfs.mount(pair.root.resolve("host-b-ram"), 72L << 20)) {
            MigrationException e = runExpectingFailure(sender(
                    Transport.plaintext(),
                    0,
                    x -> {
                        try {
                            small.fill("someone-else");
                        } catch (java.io.IOException io) {
                            throw new java.io.UncheckedIOException(io);
                        }
                    },
                    (x, ev) -> {}));
            assertEquals(MigrationStep.MIGRATION_STEP_PRECOPY, e.step());
            assertTrue(
                    e.getMessage().contains("cannot write guest memory")
                            && e.getMessage().contains("ENOSPC"),
                    e.getMessage());
            assertSourceRunningAndDestinationClean();
        }
    }

    @Test
    void cancelAfterPrepareDiscardsThePreparedDestination() throws Exception {
        MigrationException e =
                runExpectingFailure(sender(Transport.plaintext(), 0, PreCopySender::cancel, (s, ev) -> {}));
        assertTrue(e.cancelled());
        assertEquals(MigrationStep.MIGRATION_STEP_PREPARE, e.step());
        assertSourceRunningAndDestinationClean();
    }

    @Test
    void cancelMidRoundStopsTheRound() throws Exception {
        // 64 MiB at 16 MiB/s: round 0 takes about four seconds; cancel at its first progress report.
        PreCopySender s = sender(Transport.plaintext(), 16L << 20, x -> {}, (x, ev) -> {
            if (ev.hasRound() && ev.getRound().getPartial() && ev.getRound().getRound() == 0) {
                x.cancel();
            }
        });
        MigrationException e = runExpectingFailure(s);
        assertTrue(e.cancelled());
        assertEquals(MigrationStep.MIGRATION_STEP_PRECOPY, e.step());
        assertSourceRunningAndDestinationClean();
    }

    @Test
    void cancelBetweenRounds() throws Exception {
        MigrationException e = runExpectingFailure(sender(Transport.plaintext(), 0, x -> {}, (s, ev) -> {
            if (ev.getPhase() == MigrationPhase.MIGRATION_PHASE_ROUND && ev.hasRound()) {
                s.cancel();
            }
        }));
        assertTrue(e.cancelled());
        assertEquals(MigrationStep.MIGRATION_STEP_PRECOPY, e.step());
        assertSourceRunningAndDestinationClean();
    }

    @Test
    void cancelDuringTheSwitchoverResumesTheSource() throws Exception {
        MigrationException e = runExpectingFailure(sender(Transport.plaintext(), 0, x -> {}, (s, ev) -> {
            if (ev.getPhase() == MigrationPhase.MIGRATION_PHASE_SWITCHOVER) {
                s.cancel();
            }
        }));
        assertTrue(e.cancelled());
        assertTrue(
                e.step().getNumber() >= MigrationStep.MIGRATION_STEP_PAUSE.getNumber()
                        && e.step().getNumber() < MigrationStep.MIGRATION_STEP_COMMIT.getNumber(),
                e.step().toString());
        assertSourceRunningAndDestinationClean();
    }

    @Test
    void cancelAfterTheCommitIsRefusedAndTheMigrationCompletes() throws Exception {
        boolean[] accepted = {true};
        MigrationSummary s = sender(Transport.plaintext(), 0, x -> {}, (x, ev) -> {
                    if (ev.getPhase() == MigrationPhase.MIGRATION_PHASE_COMMITTED) {
                        accepted[0] = x.cancel();
                    }
                })
                .run();
        assertFalse(accepted[0], "cancel after the commit must report that it is too late");
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, s.getStatus());
        assertEquals(InstanceState.PAUSED, source.state(), "the source never resumes after a commit");
        Timing.await(
                "destination runs the VM",
                Duration.ofSeconds(5),
                () -> pair.b.instance("vm1") != null && pair.b.instance("vm1").state() == InstanceState.RUNNING);
    }

    @Test
    void destinationAgentDyingMidStreamLeavesTheSourceRunning() throws Exception {
        // Closed at round 0's first progress report (the cap keeps it going for seconds), off the sender's threads.
        AtomicBoolean closing = new AtomicBoolean();
        PreCopySender s = sender(Transport.plaintext(), 16L << 20, x -> {}, (x, ev) -> {
            if (ev.hasRound() && ev.getRound().getPartial() && closing.compareAndSet(false, true)) {
                CompletableFuture.runAsync(pair.b::close);
            }
        });
        MigrationException e = runExpectingFailure(s);
        assertFalse(e.cancelled());
        assertEquals(MigrationStep.MIGRATION_STEP_PRECOPY, e.step());
        assertEquals(InstanceState.RUNNING, source.state());
        long beat = source.heartbeat();
        Timing.await("source keeps running", Duration.ofSeconds(5), () -> source.heartbeat() > beat + 3);
        assertEquals(0, pair.ramFiles(pair.b), "the dead destination's files are gone");
    }

    @Test
    void aCorruptedFrameIsCaughtAndTheSourceKeepsRunning() throws Exception {
        AtomicInteger batches = new AtomicInteger();
        ClientInterceptor corruptThird = new ClientInterceptor() {
            @Override
            public <Q, R> ClientCall<Q, R> interceptCall(
                    MethodDescriptor<Q, R> method, CallOptions options, Channel next) {
                return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
                    @Override
                    @SuppressWarnings("unchecked")
                    public void sendMessage(Q message) {
                        if (message instanceof SenderFrame f
                                && f.hasPages()
                                && f.getPages().getData().size() > 100
                                && batches.incrementAndGet() == 3) {
                            // The last bytes of an LZ4 block are always literals, so this changes the decoded pages
                            // (a flipped match offset in repetitive memory can decode to the same bytes).
                            byte[] data = f.getPages().getData().toByteArray();
                            data[data.length - 1] ^= 0x20;
                            message = (Q) f.toBuilder()
                                    .setPages(f.getPages().toBuilder()
                                            .setData(com.google.protobuf.ByteString.copyFrom(data)))
                                    .build();
                        }
                        super.sendMessage(message);
                    }
                };
            }
        };
        MigrationException e = runExpectingFailure(
                sender(Transport.plaintext().withClientInterceptor(corruptThird), 0, x -> {}, (x, ev) -> {}));
        assertEquals(MigrationStep.MIGRATION_STEP_PRECOPY, e.step());
        assertTrue(e.getMessage().contains("checksum mismatch"), e.getMessage());
        assertSourceRunningAndDestinationClean();
    }
}
