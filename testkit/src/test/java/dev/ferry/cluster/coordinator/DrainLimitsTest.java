package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationRecord;
import dev.ferry.proto.agent.RoundProgress;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.VmMove;
import dev.ferry.proto.coordinator.DrainProgress;
import dev.ferry.proto.coordinator.DrainRequest;
import dev.ferry.testkit.TestCluster;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import org.junit.jupiter.api.Test;

/**
 * `ferry host drain --max-bandwidth --downtime-ms`: the bandwidth is the drain's total, each move
 * gets its share, and both limits reach every migration's sender. Read back from the source
 * agents' own records of the migrations (`ferry report`), over the real coordinator and agents.
 */
class DrainLimitsTest {
    @Test
    void aDrainsTotalBandwidthIsSharedBetweenItsMigrationsAndItsDowntimeLimitReachesEach() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            cluster.coordinator(Duration.ofMillis(500));
            cluster.agent("h1", Duration.ofSeconds(3), false);
            cluster.agent("h2", Duration.ofSeconds(3), false);
            CoordinatorClient client = cluster.client();
            List<String> vms = List.of("d1", "d2");
            for (String vm : vms) {
                cluster.create(client, TestCluster.spec(vm, 16L << 20, 100), "h1");
            }
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
                for (RoundProgress p : r.getRoundsList()) {
                    // The sender's own limits, as it ran each round.
                    assertEquals(total / 2, p.getMaxBandwidthLimitBytesPerSec(), m.getVm() + " " + p);
                    assertEquals(1500, p.getDowntimeLimitMs(), m.getVm() + " " + p);
                }
            }
        }
    }
}
