package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.migration.MigrationException;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.migration.RegionDigests;
import dev.ferry.migration.wire.HostileBatches;
import dev.ferry.migration.wire.RawLane;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.agent.PrepareIncomingResponse;
import dev.ferry.proto.migration.Compression;
import dev.ferry.proto.migration.DeviceStateChunk;
import dev.ferry.proto.migration.Hello;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.PageRun;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.RoundEnd;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.proto.migration.Switchover;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import io.grpc.ManagedChannel;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A sender that does not follow the protocol (a bug, a version skew, or an attacker on the
 * network) must get a refusal naming the step, and never leave half a VM behind.
 */
class HostileSenderTest {
    private AgentPair pair;
    private ManagedChannel channel;

    /** Short deadlines, so that a silent sender is let go of within the test's waits. */
    private static final Duration HANDSHAKE = Timing.seconds(5);

    private static final Duration IDLE = Timing.seconds(2);

    /**
     * The idle deadline of every other test: long, so that a refusal under test is never overtaken
     * by it on a loaded machine (deviceStateAfterItsLastChunkEndsTheMigration once was: its frames
     * took over 2 s to arrive beside a QEMU test run, and the discard named the idle deadline).
     */
    private static final Duration IDLE_ELSEWHERE = Timing.seconds(30);

    /** How long a lane waits for each answer of the receiver. */
    private static final Duration ANSWER = Timing.seconds(10);

    @BeforeEach
    void start(org.junit.jupiter.api.TestInfo test) throws Exception {
        Duration idle = test.getDisplayName().contains("IdleDeadline") ? IDLE : IDLE_ELSEWHERE;
        pair = new AgentPair(
                Transport.plaintext(),
                dir -> new SimDriver(),
                c -> c.withTimeouts(c.timeouts(), HANDSHAKE).withIdleTimeout(idle));
        channel = Transport.plaintext().channel(pair.b.endpoint(), dev.ferry.rpc.PeerRequirement.agent("host-b"));
    }

    @AfterEach
    void stop() throws Exception {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        pair.close();
    }

    private static VmSpec spec() {
        return AgentPair.busyGuest("victim", 16L << 20, 0);
    }

    private PrepareIncomingResponse prepare(String id) {
        return pair.clientB.prepareIncoming(PrepareIncomingRequest.newBuilder()
                .setMigrationId(id)
                .setSpec(spec())
                .setSourceHost("host-a")
                .setMode(TransferMode.TRANSFER_MODE_PRECOPY)
                .setEpoch(1)
                .build());
    }

    private static Hello.Builder hello(String id, String token) {
        return Hello.newBuilder()
                .setProtocolVersion(MigrationStreamRpc.PROTOCOL_VERSION)
                .setMigrationId(id)
                .setToken(token)
                .setSpec(spec())
                .setRamBytes(16L << 20)
                .setPageSize(4096)
                .setLane(0)
                .setLaneCount(1)
                .setSourceHost("host-a")
                .setMode(TransferMode.TRANSFER_MODE_PRECOPY)
                .setWindowPages(MigrationStreamRpc.WINDOW_PAGES);
    }

    private static void assertRefusal(ReceiverFrame f, MigrationStep step, String text) {
        assertTrue(f.hasAbort(), "expected a refusal, got " + f);
        assertEquals(step, f.getAbort().getStep());
        assertTrue(f.getAbort().getReason().contains(text), f.getAbort().getReason());
    }

    @Test
    void anUnexpectedMigrationIsRefused() throws Exception {
        RawLane lane = new RawLane(channel, ANSWER);
        lane.send(
                SenderFrame.newBuilder().setHello(hello("never-prepared", "x")).build());
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "not expecting");
    }

    @Test
    void aFirstFrameThatIsNotAHelloIsRefused() throws Exception {
        RawLane lane = new RawLane(channel, ANSWER);
        lane.send(SenderFrame.newBuilder()
                .setPages(PageBatch.getDefaultInstance())
                .build());
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "must be a hello");
    }

    @Test
    void aWrongTokenVersionSpecOrSizeIsRefusedAndTheRightSenderStillGetsIn() throws Exception {
        PrepareIncomingResponse p = prepare("m1");
        RawLane badToken = new RawLane(channel, ANSWER);
        badToken.send(SenderFrame.newBuilder().setHello(hello("m1", "guess")).build());
        assertRefusal(badToken.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "wrong token");

        RawLane future = new RawLane(channel, ANSWER);
        future.send(SenderFrame.newBuilder()
                .setHello(hello("m1", p.getToken()).setProtocolVersion(99))
                .build());
        assertRefusal(future.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "protocol version 99");

        RawLane otherVm = new RawLane(channel, ANSWER);
        otherVm.send(SenderFrame.newBuilder()
                .setHello(hello("m1", p.getToken()).setSpec(spec().toBuilder().setMemoryBytes(32L << 20)))
                .build());
        assertRefusal(otherVm.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "spec differs");

        RawLane good = new RawLane(channel, ANSWER);
        good.send(SenderFrame.newBuilder().setHello(hello("m1", p.getToken())).build());
        assertTrue(good.next().hasHelloAck(), "a refused impostor must not spoil the prepared migration");
        good.halfClose();
        Timing.await(
                "destination discards after the source goes away",
                Duration.ofSeconds(10),
                () -> pair.clientB.listVms().isEmpty());
    }

    @Test
    void aVerifiedLaneFromAnAgentThatDigestsDifferentlyIsRefusedAtTheHandshakeNotAsAMemoryMismatch() throws Exception {
        PrepareIncomingResponse p = prepare("m-scheme");
        // An agent from before the digest scheme was named sends none (0), with verification on:
        // before, the lane was taken and the migration failed only at the pause, as a mismatch.
        RawLane older = new RawLane(channel, ANSWER);
        older.send(SenderFrame.newBuilder()
                .setHello(hello("m-scheme", p.getToken()).setVerify(true))
                .build());
        ReceiverFrame refusal = older.next();
        assertRefusal(refusal, MigrationStep.MIGRATION_STEP_HANDSHAKE, "digests RAM by scheme 0");
        assertTrue(
                refusal.getAbort().getReason().contains("--verify needs the same Ferry on both hosts"),
                refusal.getAbort().getReason());

        RawLane later = new RawLane(channel, ANSWER);
        later.send(SenderFrame.newBuilder()
                .setHello(hello("m-scheme", p.getToken()).setVerify(true).setDigestScheme(RegionDigests.SCHEME + 1))
                .build());
        assertRefusal(later.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "unknown to this agent");

        // Without verification the scheme does not matter: mixed versions still migrate.
        RawLane plain = new RawLane(channel, ANSWER);
        plain.send(SenderFrame.newBuilder()
                .setHello(hello("m-scheme", p.getToken()))
                .build());
        ReceiverFrame ack = plain.next();
        assertTrue(ack.hasHelloAck(), "a lane without verification is taken: " + ack);
        // The destination names its scheme, so a source asking for verification can stop at once.
        assertEquals(RegionDigests.SCHEME, ack.getHelloAck().getDigestScheme());
        plain.halfClose();
        Timing.await(
                "destination discards after the source goes away",
                Duration.ofSeconds(10),
                () -> pair.clientB.listVms().isEmpty());
    }

    @Test
    void aMalformedBatchAbortsTheMigrationAndDiscardsTheDestination() throws Exception {
        PrepareIncomingResponse p = prepare("m2");
        RawLane lane = new RawLane(channel, ANSWER);
        lane.send(SenderFrame.newBuilder().setHello(hello("m2", p.getToken())).build());
        assertTrue(lane.next().hasHelloAck());
        assertEquals(1, pair.ramFiles(pair.b));
        lane.send(SenderFrame.newBuilder()
                .setPages(PageBatch.newBuilder()
                        .setBasePage(0)
                        .setDataPages(ByteString.copyFrom(new byte[MigrationStreamRpc.WINDOW_PAGES / 8]))
                        .setCompression(Compression.COMPRESSION_LZ4)
                        .setRawLength(4096)
                        .setData(ByteString.copyFromUtf8("junk")))
                .build());
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_PRECOPY, "malformed frame");
        Timing.await("destination discards", Duration.ofSeconds(10), () -> {
            try {
                return pair.clientB.listVms().isEmpty() && pair.ramFiles(pair.b) == 0;
            } catch (Exception e) {
                return false;
            }
        });
    }

    @Test
    void pagesBeyondGuestMemoryAreRefused() throws Exception {
        PrepareIncomingResponse p = prepare("m3");
        RawLane lane = new RawLane(channel, ANSWER);
        lane.send(SenderFrame.newBuilder().setHello(hello("m3", p.getToken())).build());
        assertTrue(lane.next().hasHelloAck());
        lane.send(SenderFrame.newBuilder()
                .setPages(PageBatch.newBuilder()
                        .setBasePage(1L << 40)
                        .setDataPages(ByteString.copyFrom(new byte[MigrationStreamRpc.WINDOW_PAGES / 8]))
                        .setCompression(Compression.COMPRESSION_RAW))
                .build());
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_PRECOPY, "not a window start below");
    }

    private static final int WINDOW = MigrationStreamRpc.WINDOW_PAGES;

    /** Window {@code w} of round {@code round}, all zero pages, with a valid checksum. */
    private static SenderFrame.Builder zeroWindow(long w, int round) {
        return SenderFrame.newBuilder().setPages(HostileBatches.zeroWindow(w, round, WINDOW, 4096, WINDOW));
    }

    private static SenderFrame.Builder roundEnd(int round, long batches, long pages, boolean last) {
        return SenderFrame.newBuilder()
                .setRoundEnd(RoundEnd.newBuilder()
                        .setRound(round)
                        .setBatches(batches)
                        .setPages(pages)
                        .setFinal(last));
    }

    /**
     * Lane {@code index} of {@code count}'s part of round 0, the full copy (every window of the
     * lane, whole: all zero here), and its RoundEnd.
     */
    private static void firstRound(RawLane lane, int index, int count, boolean last) {
        lane.sendZeroFirstRound((16L << 20) / 4096, 4096, index, count, last);
    }

    private static SenderFrame.Builder switchover(int finalRound) {
        return SenderFrame.newBuilder().setSwitchover(Switchover.newBuilder().setFinalRound(finalRound));
    }

    /** Real device state of a sim guest like the prepared one, so the destination can load it. */
    private SenderFrame.Builder deviceState() throws Exception {
        return SenderFrame.newBuilder()
                .setDeviceState(DeviceStateChunk.newBuilder()
                        .setData(SimDeviceState.of(spec(), pair.root))
                        .setLast(true));
    }

    /** The destination holds neither the VM nor its RAM file, and takes a new migration of it. */
    private void assertDiscardedAndNameFree() throws Exception {
        Timing.await("destination discards", Duration.ofSeconds(10), () -> {
            try {
                return pair.clientB.listVms().isEmpty() && pair.ramFiles(pair.b) == 0;
            } catch (Exception e) {
                return false;
            }
        });
        PrepareIncomingResponse again = prepare("after-" + System.nanoTime());
        assertTrue(!again.getToken().isEmpty());
    }

    /**
     * A uint32 lane index of 2^31 arrives as a negative int: it passed "lane < lane count", failed
     * on the array index, and the half-done attach fixed the lane count of the real sender's lanes.
     */
    @Test
    void aHelloForLaneTwoToThe31IsRefusedNotTakenAsNegative() throws Exception {
        PrepareIncomingResponse p = prepare("m-lane");
        RawLane bad = new RawLane(channel, ANSWER);
        bad.send(SenderFrame.newBuilder()
                .setHello(hello("m-lane", p.getToken()).setLane(1 << 31).setLaneCount(2)));
        assertRefusal(bad.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "lane 2147483648 of 2");
        new RawLane(channel, ANSWER).attach(hello("m-lane", p.getToken()));
    }

    /**
     * A lane that repeats its final RoundEnd was counted twice, so the destination answered Ready
     * while another lane had not delivered its final pages.
     */
    @Test
    void aRepeatedFinalRoundEndIsRefusedNotCountedTwice() throws Exception {
        PrepareIncomingResponse p = prepare("m-final");
        SenderFrame.Builder state = deviceState();
        RawLane lane0 = new RawLane(channel, ANSWER)
                .attach(hello("m-final", p.getToken()).setLaneCount(2));
        new RawLane(channel, ANSWER)
                .attach(hello("m-final", p.getToken()).setLane(1).setLaneCount(2));
        firstRound(lane0, 0, 2, true);
        lane0.send(roundEnd(0, 8, 8 * WINDOW, true));
        lane0.send(state);
        lane0.send(switchover(0));
        assertRefusal(lane0.next(), MigrationStep.MIGRATION_STEP_FINAL_PAGES, "final round end twice");
        assertDiscardedAndNameFree();
    }

    /** Each new round number took an entry in the lane's table of rounds, without bound. */
    @Test
    void aBatchOfAnotherRoundThanTheLanesIsRefusedSoRoundsCannotPileUp() throws Exception {
        PrepareIncomingResponse p = prepare("m-rounds");
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-rounds", p.getToken()));
        lane.send(zeroWindow(0, 7));
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_PRECOPY, "round 7 during round 0");
        assertDiscardedAndNameFree();
    }

    /**
     * Window w travels on lane w mod N so that a newer copy of a page never overtakes an older one;
     * a window on another lane was applied, and could land after a newer copy of itself.
     */
    @Test
    void aWindowOnAnotherLaneIsRefusedSoAnOlderCopyCannotOvertakeANewerOne() throws Exception {
        PrepareIncomingResponse p = prepare("m-stripe");
        new RawLane(channel, ANSWER).attach(hello("m-stripe", p.getToken()).setLaneCount(2));
        RawLane lane1 = new RawLane(channel, ANSWER)
                .attach(hello("m-stripe", p.getToken()).setLane(1).setLaneCount(2));
        lane1.send(zeroWindow(2, 0));
        assertRefusal(lane1.next(), MigrationStep.MIGRATION_STEP_PRECOPY, "window 2 travels on lane 0");
        assertDiscardedAndNameFree();
    }

    /** RoundEnd's page count was never compared with the pages that arrived. */
    @Test
    void aRoundEndWhosePageCountDiffersFromWhatArrivedIsRefused() throws Exception {
        PrepareIncomingResponse p = prepare("m-pages");
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-pages", p.getToken()));
        lane.send(zeroWindow(0, 0));
        lane.send(roundEnd(0, 1, 1000, false));
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_PRECOPY, "1 batches of 1000 pages");
        assertDiscardedAndNameFree();
    }

    /**
     * A lane that ends its pages a round early (a sender bug) loses that round's pages on it; the
     * destination answered Ready anyway, with stale pages.
     */
    @Test
    void aLaneWhoseFinalRoundIsNotTheSwitchoversIsRefusedNotReportedReady() throws Exception {
        PrepareIncomingResponse p = prepare("m-early");
        SenderFrame.Builder state = deviceState();
        RawLane lane0 = new RawLane(channel, ANSWER)
                .attach(hello("m-early", p.getToken()).setLaneCount(2));
        RawLane lane1 = new RawLane(channel, ANSWER)
                .attach(hello("m-early", p.getToken()).setLane(1).setLaneCount(2));
        firstRound(lane1, 1, 2, true);
        firstRound(lane0, 0, 2, false);
        lane0.send(roundEnd(1, 0, 0, true));
        lane0.send(state);
        lane0.send(switchover(1));
        assertRefusal(lane0.next(), MigrationStep.MIGRATION_STEP_FINAL_PAGES, "final round");
        assertDiscardedAndNameFree();
    }

    /** A switchover with a lane missing waited out the whole apply timeout for pages that could not come. */
    @Test
    void aSwitchoverBeforeEveryLaneSaidHelloIsRefusedAtOnce() throws Exception {
        PrepareIncomingResponse p = prepare("m-missing");
        SenderFrame.Builder state = deviceState();
        RawLane lane0 = new RawLane(channel, ANSWER)
                .attach(hello("m-missing", p.getToken()).setLaneCount(2));
        firstRound(lane0, 0, 2, true);
        lane0.send(state);
        lane0.send(switchover(0));
        assertRefusal(lane0.next(), MigrationStep.MIGRATION_STEP_FINAL_PAGES, "1 of 2 lanes");
        assertDiscardedAndNameFree();
    }

    /**
     * Device state travels on lane 0 before the Switchover, so a Switchover without its last chunk
     * can never complete; it waited out the whole apply timeout.
     */
    @Test
    void aSwitchoverBeforeTheLastDeviceStateChunkIsRefusedAtOnce() throws Exception {
        PrepareIncomingResponse p = prepare("m-nostate");
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-nostate", p.getToken()));
        firstRound(lane, 0, 1, true);
        lane.send(switchover(0));
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_FINAL_PAGES, "device state");
        assertDiscardedAndNameFree();
    }

    /** Already handled before this suite grew: kept so that it stays handled. */
    @Test
    void aHelloRepeatedOnAnAttachedLaneEndsTheMigration() throws Exception {
        PrepareIncomingResponse p = prepare("m-hello2");
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-hello2", p.getToken()));
        lane.send(SenderFrame.newBuilder().setHello(hello("m-hello2", p.getToken())));
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "second hello");
        assertDiscardedAndNameFree();
    }

    /** Already handled before this suite grew: kept so that it stays handled. */
    @Test
    void deviceStateAfterItsLastChunkEndsTheMigration() throws Exception {
        PrepareIncomingResponse p = prepare("m-state2");
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-state2", p.getToken()));
        SenderFrame.Builder state = deviceState();
        lane.send(state);
        lane.send(state);
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_DEVICE_STATE, "after its last chunk");
        assertDiscardedAndNameFree();
    }

    /**
     * Already handled before this suite grew (gRPC's message limit refuses the frame before it is
     * buffered): kept so that memory per lane stays bounded by the limit.
     */
    @Test
    void aDeviceStateChunkOverTheMessageLimitEndsTheMigration() throws Exception {
        PrepareIncomingResponse p = prepare("m-huge");
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-huge", p.getToken()));
        lane.send(SenderFrame.newBuilder()
                .setDeviceState(DeviceStateChunk.newBuilder()
                        .setData(ByteString.copyFrom(ByteBuffer.allocate(Transport.MAX_MESSAGE_BYTES + 1)))));
        Throwable ended = lane.ended().get(Timing.seconds(10).toMillis(), TimeUnit.MILLISECONDS);
        assertTrue(ended != null, "the call must end with an error");
        assertDiscardedAndNameFree();
    }

    /**
     * The handshake deadline as it was before lanes were counted: no lane at all within it. Passed
     * before this suite grew (the old attach timeout covered it).
     */
    @Test
    void aPreparedMigrationThatNoLaneJoinsIsDiscardedAtTheHandshakeDeadline() throws Exception {
        prepare("m-nobody");
        assertEquals(1, pair.ramFiles(pair.b));
        assertDiscardedAndNameFree();
    }

    /**
     * Only a migration without any lane was discarded at the handshake deadline: one whose second
     * lane never came (its source blackholed meanwhile) held the VM's RAM and name for good.
     */
    @Test
    void aMigrationWhoseSecondLaneNeverSaysHelloIsDiscardedAtTheHandshakeDeadline() throws Exception {
        PrepareIncomingResponse p = prepare("m-half");
        RawLane lane0 = new RawLane(channel, ANSWER)
                .attach(hello("m-half", p.getToken()).setLaneCount(2));
        assertRefusal(
                lane0.next(),
                MigrationStep.MIGRATION_STEP_HANDSHAKE,
                "1 of 2 lanes said hello within " + MigrationException.describe(HANDSHAKE) + " of the prepare");
        assertDiscardedAndNameFree();
    }

    /** A source connected but silent (frozen, or its link blackholed) was waited for forever. */
    @Test
    void aSourceThatFallsSilentMidRoundIsDiscardedAtTheIdleDeadline() throws Exception {
        PrepareIncomingResponse p = prepare("m-quiet");
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-quiet", p.getToken()));
        lane.send(zeroWindow(0, 0));
        assertRefusal(
                lane.next(),
                MigrationStep.MIGRATION_STEP_PRECOPY,
                "no frame from the source for " + MigrationException.describe(IDLE));
        assertDiscardedAndNameFree();
    }

    /**
     * After the Switchover a lane that still owes its final pages and says nothing more was waited for
     * until the whole apply timeout (minutes, by default), with the source paused all along.
     */
    @Test
    void aLaneSilentAfterTheSwitchoverIsDiscardedAtTheIdleDeadline() throws Exception {
        PrepareIncomingResponse p = prepare("m-owes");
        SenderFrame.Builder state = deviceState();
        RawLane lane0 = new RawLane(channel, ANSWER)
                .attach(hello("m-owes", p.getToken()).setLaneCount(2));
        new RawLane(channel, ANSWER)
                .attach(hello("m-owes", p.getToken()).setLane(1).setLaneCount(2));
        firstRound(lane0, 0, 2, true);
        lane0.send(state);
        lane0.send(switchover(0));
        assertRefusal(
                lane0.next(),
                MigrationStep.MIGRATION_STEP_FINAL_PAGES,
                "no frame from the source for " + MigrationException.describe(IDLE));
        assertDiscardedAndNameFree();
    }

    /**
     * Found by ReceiverFuzzTest (seed 77263547816287, case 399): a hello claiming one lane while the
     * sender striped its windows over two sent only every other window, with matching counts; the
     * destination answered Ready with the other windows never sent, and without verification the
     * guest would have resumed on zeroed memory.
     */
    @Test
    void aFirstRoundThatSkipsWindowsIsRefusedNotReadyWithPagesNeverSent() throws Exception {
        PrepareIncomingResponse p = prepare("m-skip");
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-skip", p.getToken()));
        lane.send(zeroWindow(0, 0));
        lane.send(zeroWindow(2, 0));
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_PRECOPY, "sent window 2 in round 0, expected window 1");
        assertDiscardedAndNameFree();
    }

    /** As above, with a lane that ends round 0 before its last window. */
    @Test
    void aFirstRoundEndedBeforeItsLastWindowIsRefused() throws Exception {
        PrepareIncomingResponse p = prepare("m-short");
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-short", p.getToken()));
        lane.send(zeroWindow(0, 0));
        lane.send(roundEnd(0, 1, WINDOW, false));
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_PRECOPY, "ended round 0 before its window 1 of 16");
        assertDiscardedAndNameFree();
    }

    /** As above, with a first-round batch that covers only part of its window. */
    @Test
    void aFirstRoundWindowNotWholeIsRefused() throws Exception {
        PrepareIncomingResponse p = prepare("m-part");
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-part", p.getToken()));
        lane.send(SenderFrame.newBuilder()
                .setPages(HostileBatches.seal(
                        PageBatch.newBuilder()
                                .setBasePage(0)
                                .setDataPages(ByteString.copyFrom(new byte[WINDOW / 8]))
                                .addZeroRuns(PageRun.newBuilder().setOffset(0).setCount(100))
                                .setCompression(Compression.COMPRESSION_RAW),
                        4096,
                        WINDOW,
                        new byte[0])));
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_PRECOPY, "covers 100 of its 256 pages");
        assertDiscardedAndNameFree();
    }

    /** Bytes that are no frame: a tag of field 0 (never valid) and then some, so they cannot parse by chance. */
    private static byte[] garbage() {
        return new byte[] {0x07, 0x55, 0x2a, (byte) 0xff, 0x01};
    }

    /**
     * Found by chaos scenario 13 (seed 10, a compromised source host): a frame gRPC cannot parse
     * ends the lane's call with gRPC's own "Application error processing RPC", and the stream's
     * observer hears neither an error nor the end; the destination held the VM's RAM and name until
     * its idle deadline (30 s) instead of letting go at once.
     */
    @Test
    void aFrameThatDoesNotParseEndsTheMigrationAtOnce() throws Exception {
        PrepareIncomingResponse p = prepare("m-garbage");
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-garbage", p.getToken()));
        lane.sendBytes(garbage());
        Throwable ended = lane.ended().get(Timing.seconds(10).toMillis(), TimeUnit.MILLISECONDS);
        assertTrue(ended != null, "the call must end with an error");
        assertDiscardedAndNameFree();
    }

    /**
     * As above, once the destination said Ready: nothing but a lost lane (or the commit) ends that
     * state, and a lane gRPC closed was never reported lost, so the prepared VM stayed for good.
     */
    @Test
    void aFrameThatDoesNotParseWhileReadyIsResolvedNotHeldForever() throws Exception {
        PrepareIncomingResponse p = prepare("m-garbage-ready");
        SenderFrame.Builder state = deviceState();
        RawLane lane = new RawLane(channel, ANSWER).attach(hello("m-garbage-ready", p.getToken()));
        firstRound(lane, 0, 1, true);
        lane.send(state);
        lane.send(switchover(0));
        ReceiverFrame ready = lane.next();
        assertTrue(ready.hasReady(), "expected Ready, got " + ready);
        lane.sendBytes(garbage());
        assertDiscardedAndNameFree();
    }

    /**
     * Found by ReceiverFuzzTest (seed 20250611, case 487): a lane call the source closed before it
     * sent anything belonged to no migration, so nothing ever ended it; every such call stayed open
     * on the destination until the connection went.
     */
    @Test
    void aLaneClosedBeforeItsHelloIsEndedNotLeftOpen() throws Exception {
        RawLane lane = new RawLane(channel, ANSWER);
        lane.halfClose();
        Throwable ended = lane.ended().get(Timing.seconds(10).toMillis(), TimeUnit.MILLISECONDS);
        assertTrue(ended != null, "the destination ends the call with a refusal");
        assertRefusal(lane.next(), MigrationStep.MIGRATION_STEP_HANDSHAKE, "closed before its hello");
    }
}
