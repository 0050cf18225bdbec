package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.agent.LimitChange;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationRecord;
import dev.ferry.proto.agent.RoundProgress;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.VmMove;
import dev.ferry.proto.coordinator.DrainProgress;
import dev.ferry.proto.coordinator.DrainRequest;
import dev.ferry.testkit.TestCluster;
import java.time.Duration;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/**
 * `ferry host drain --max-bandwidth --downtime-ms`: the bandwidth is the drain's total, each move
 * gets its share, raised when fewer moves are left than may run at once, and both limits reach
 * every migration's sender. Read back from the records of the migrations (`ferry report`), over
 * the real coordinator and agents.
 */
class DrainLimitsTest {
    @Test
    void aDrainsTotalBandwidthIsSharedBetweenItsMigrationsRaisedAtItsTailAndItsDowntimeLimitReachesEach()
            throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            cluster.coordinator(Duration.ofMillis(500));
            cluster.agent("h1", Duration.ofSeconds(3), false);
            cluster.agent("h2", Duration.ofSeconds(3), false);
            CoordinatorClient client = cluster.client();
            // A small guest and one six times its size: the small one ends first, and the big one is
            // left alone for seconds, at first with half of the drain's bandwidth.
            cluster.create(client, TestCluster.spec("d1", 16L << 20, 100), "h1");
            cluster.create(client, TestCluster.spec("d2", 96L << 20, 100), "h1");
            long total = 32L << 20;
            DrainProgress end = client.drain(
                    DrainRequest.newBuilder()
                            .setHost("h1")
                            .setParallel(4)
                            .setOptions(MigrationOptions.newBuilder()
                                    .setMaxBandwidthBytesPerSec(total)
                                    .setDowntimeMs(1500))
                            .setRequestId(UUID.randomUUID().toString())
                            .build(),
                    p -> {},
                    true);
            assertEquals(IntentState.INTENT_STATE_DONE, end.getState(), end.toString());

            for (VmMove m : end.getMovesList()) {
                // Up to four at a time, two to move: both start at once, each with half (not a quarter).
                MigrationRecord r = client.report(end.getIntentId() + "." + m.getVm()) // Moves.childId
                        .getRecord();
                assertEquals("h1", r.getSource(), r.toString());
                assertEquals(total / 2, r.getOptions().getMaxBandwidthBytesPerSec(), m.getVm());
                assertEquals(1500, r.getOptions().getDowntimeMs(), m.getVm());
                assertFalse(r.getRoundsList().isEmpty(), m.getVm() + " has rounds");
                // Raised, if at all, to the whole total once the other move ended.
                for (LimitChange c : r.getLimitChangesList()) {
                    assertEquals(total, c.getMaxBandwidthBytesPerSec(), m.getVm() + " " + c);
                }
                // The sender's own limits at each round's end: half the total, or (raised) all of it.
                long before = 0;
                for (RoundProgress p : r.getRoundsList()) {
                    long limit = p.getMaxBandwidthLimitBytesPerSec();
                    assertTrue(limit == total / 2 || limit == total, m.getVm() + " " + p);
                    assertTrue(limit >= before, "never lowered: " + m.getVm() + " " + p);
                    before = limit;
                    assertEquals(1500, p.getDowntimeLimitMs(), m.getVm() + " " + p);
                }
                if (m.getVm().equals("d2")) {
                    // Alone at the drain's tail, the big one got the whole total, and ran with it.
                    assertEquals(1, r.getLimitChangesCount(), r.toString());
                    assertEquals(
                            total, r.getRounds(r.getRoundsCount() - 1).getMaxBandwidthLimitBytesPerSec(), r.toString());
                }
            }
        }
    }
}
