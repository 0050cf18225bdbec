package dev.ferry.migration.receive;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.migration.commit.CommitOutcome;
import dev.ferry.migration.wire.BatchCodec;
import dev.ferry.migration.wire.HostileBatches;
import dev.ferry.proto.migration.Compression;
import dev.ferry.proto.migration.DeviceStateChunk;
import dev.ferry.proto.migration.PageBatch;
import dev.ferry.proto.migration.PageRun;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.RoundEnd;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.proto.migration.Switchover;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.testing.Timing;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/**
 * The order in which a pre-copy destination hands the hypervisor its device state: only after
 * every final page is in guest RAM. QEMU reads RAM while it loads devices (virtio takes each
 * queue's used index from the ring in guest memory); on QEMU the source saves the device state
 * first and sends the final pages after it, so a destination that loaded each chunk as it came
 * built its virtio queues from the rings as of the last pre-copy round. A migrated Linux guest with
 * a NIC then hung (its driver waited forever on a queue whose used index the device had rewound).
 */
class DeviceStateLoadOrderTest {
    private static final int PAGE = 4096;
    private static final int WINDOW = MigrationStreamRpc.WINDOW_PAGES;
    /** What the "ring" page holds after the guest's last write, which only the final round carries. */
    private static final byte RING_INDEX = 0x5a;

    private final ReceiverDiscardTest t = new ReceiverDiscardTest();

    @Test
    void aVirtioRingWrittenInTheFinalRoundIsInRamBeforeTheDeviceStateLoads() throws Exception {
        List<Byte> seenByTheLoad = new CopyOnWriteArrayList<>();
        t.vm.onDeviceStateWrite = memory -> seenByTheLoad.add(memory.bytes[0]);
        IncomingMigration m = t.migration(
                TransferMode.TRANSFER_MODE_PRECOPY, new ReceiverDiscardTest.ClusterCommit(CommitOutcome.COMMITTED));
        ReceiverDiscardTest.Call call = new ReceiverDiscardTest.Call();
        ReceiverLane lane = ReceiverDiscardTest.attach(m, call, TransferMode.TRANSFER_MODE_PRECOPY);
        long pages = t.vm.memory.sizeBytes() / PAGE;

        // Round 0: the full copy, all zero.
        for (long base = 0; base < pages; base += WINDOW) {
            lane.onFrame(SenderFrame.newBuilder()
                    .setPages(HostileBatches.seal(
                            PageBatch.newBuilder()
                                    .setBasePage(base)
                                    .setDataPages(ByteString.copyFrom(new byte[WINDOW / 8]))
                                    .addZeroRuns(PageRun.newBuilder().setCount(WINDOW))
                                    .setCompression(Compression.COMPRESSION_RAW),
                            PAGE,
                            WINDOW,
                            new byte[0]))
                    .build());
        }
        lane.onFrame(roundEnd(0, pages / WINDOW, pages, false));

        // The switchover as a QEMU source sends it: the device state first, then the final pages.
        lane.onFrame(SenderFrame.newBuilder()
                .setDeviceState(DeviceStateChunk.newBuilder()
                        .setData(ByteString.copyFromUtf8("virtio-net queues"))
                        .setLast(true))
                .build());
        byte[] last = new byte[WINDOW * PAGE];
        last[0] = RING_INDEX;
        MemorySegment src = MemorySegment.ofArray(last);
        BatchCodec.Encoded e = new BatchCodec(PAGE, WINDOW)
                .encode((off, dst) -> MemorySegment.copy(src, off, dst, 0, dst.byteSize()), pages, 0, null, 1);
        lane.onFrame(SenderFrame.newBuilder().setPages(e.batch()).build());
        lane.onFrame(roundEnd(1, 1, WINDOW, true));
        lane.onFrame(SenderFrame.newBuilder()
                .setSwitchover(Switchover.newBuilder().setFinalRound(1))
                .build());
        Timing.await(
                "the destination is ready",
                Duration.ofSeconds(10),
                () -> call.sent.stream().anyMatch(ReceiverFrame::hasReady)
                        || m.state() == IncomingMigration.State.DISCARDED);
        assertEquals(IncomingMigration.State.READY, m.state(), m.discardReason());

        assertEquals(1, seenByTheLoad.size(), "the device state went into the load once");
        assertTrue(
                seenByTheLoad.stream().allMatch(b -> b == RING_INDEX),
                "the load read the ring as of the last pre-copy round, not the final one: " + seenByTheLoad);
    }

    /**
     * Held device state is bounded: a source that sends more than any guest's devices save (or a
     * hostile one) ends the migration with the reason, and the destination lets go of all of it.
     */
    @Test
    void deviceStateBeyondTheBoundEndsTheMigrationAndIsNotHeld() throws Exception {
        IncomingMigration m = t.migration(
                TransferMode.TRANSFER_MODE_PRECOPY, new ReceiverDiscardTest.ClusterCommit(CommitOutcome.COMMITTED));
        ReceiverDiscardTest.Call call = new ReceiverDiscardTest.Call();
        ReceiverLane lane = ReceiverDiscardTest.attach(m, call, TransferMode.TRANSFER_MODE_PRECOPY);
        // One 64 MiB buffer, sent again and again: held by reference, so the test holds 64 MiB.
        ByteString chunk = ByteString.copyFrom(new byte[64 << 20]);
        long chunks = IncomingMigration.MAX_HELD_DEVICE_STATE / chunk.size() + 1;
        for (long i = 0; i < chunks && m.state() != IncomingMigration.State.DISCARDED; i++) {
            lane.onFrame(SenderFrame.newBuilder()
                    .setDeviceState(DeviceStateChunk.newBuilder().setData(chunk))
                    .build());
        }
        Timing.await(
                "the destination discards",
                Duration.ofSeconds(10),
                () -> m.state() == IncomingMigration.State.DISCARDED);
        assertTrue(m.discardReason().contains("device state exceeds 256 MiB"), m.discardReason());
        assertEquals(0, m.heldDeviceStateBytes(), "nothing held after the discard");
        assertTrue(
                call.sent.stream()
                        .anyMatch(f -> f.hasAbort()
                                && f.getAbort().getStep()
                                        == dev.ferry.proto.migration.MigrationStep.MIGRATION_STEP_DEVICE_STATE),
                "the source is told which step: " + call.sent);
    }

    private static SenderFrame roundEnd(int round, long batches, long pages, boolean fin) {
        return SenderFrame.newBuilder()
                .setRoundEnd(RoundEnd.newBuilder()
                        .setRound(round)
                        .setBatches(batches)
                        .setPages(pages)
                        .setFinal(fin))
                .build();
    }
}
