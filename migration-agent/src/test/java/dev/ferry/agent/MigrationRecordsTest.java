package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationRecord;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.RoundProgress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The source's records of its outgoing migrations (`ferry report`): kept, bounded, and read back after a restart. */
class MigrationRecordsTest {
    @TempDir
    Path dir;

    static final class StepClock extends Clock {
        Instant now = Instant.parse("2026-01-01T00:00:00Z");

        @Override
        public ZoneOffset getZone() {
            return ZoneOffset.UTC;
        }

        @Override
        public Clock withZone(java.time.ZoneId zone) {
            return this;
        }

        @Override
        public Instant instant() {
            return now;
        }
    }

    static void migrate(MigrationRecords records, String id, String vm, int rounds) {
        Consumer<MigrationEvent> r = records.recorder(
                MigrateRequest.newBuilder().setVm(vm).setTargetHost("h2").build(), id, "h1");
        for (int i = 0; i < rounds; i++) {
            // A partial update within the round, then its end: only the end is kept.
            r.accept(MigrationEvent.newBuilder()
                    .setRound(RoundProgress.newBuilder().setRound(i).setPartial(true))
                    .build());
            r.accept(MigrationEvent.newBuilder()
                    .setRound(RoundProgress.newBuilder().setRound(i))
                    .build());
        }
        r.accept(MigrationEvent.newBuilder()
                .setSummary(MigrationSummary.newBuilder()
                        .setStatus(MigrationPhase.MIGRATION_PHASE_COMPLETED)
                        .setRounds(rounds))
                .build());
    }

    @Test
    void aFinishedMigrationsRecordHasEveryRoundAndOutlivesTheAgent() throws Exception {
        StepClock clock = new StepClock();
        MigrationRecords records = new MigrationRecords(dir, MigrationRecords.Retention.DEFAULT, clock).load();
        Consumer<MigrationEvent> running = records.recorder(
                MigrateRequest.newBuilder().setVm("web").setTargetHost("h2").build(), "op-2", "h1");
        running.accept(MigrationEvent.newBuilder()
                .setRound(RoundProgress.newBuilder().setRound(0))
                .build());
        migrate(records, "op-1", "web", 3);

        List<MigrationRecord> web = records.find("", "web");
        assertEquals(
                List.of("op-2", "op-1"),
                web.stream().map(MigrationRecord::getMigrationId).toList(),
                "the running one first, then the finished ones");
        MigrationRecord done = records.find("op-1", "").getFirst();
        assertEquals(3, done.getRoundsCount());
        assertEquals("h1", done.getSource());
        assertTrue(done.hasSummary());

        MigrationRecords restarted = new MigrationRecords(dir, MigrationRecords.Retention.DEFAULT, clock).load();
        assertEquals(done, restarted.find("op-1", "").getFirst());
        assertTrue(restarted.find("op-2", "").isEmpty(), "a migration the old process ran is not running now");
    }

    @Test
    void recordsBeyondTheCountOrOlderThanTheRetentionAreDropped() throws Exception {
        StepClock clock = new StepClock();
        MigrationRecords records =
                new MigrationRecords(dir, new MigrationRecords.Retention(2, Duration.ofDays(1)), clock).load();
        for (String id : List.of("a", "b", "c")) {
            clock.now = clock.now.plusSeconds(1);
            migrate(records, id, "vm-" + id, 1);
        }
        assertEquals(
                List.of("c", "b"),
                records.find("", "").stream()
                        .map(MigrationRecord::getMigrationId)
                        .toList());
        try (var files = Files.list(dir)) {
            assertEquals(2, files.count(), "the dropped one's file went too");
        }
        clock.now = clock.now.plus(Duration.ofDays(2));
        assertTrue(records.find("", "").isEmpty());
    }

    @Test
    void anUnreadableRecordIsSetAsideAndTheOthersLoad() throws Exception {
        StepClock clock = new StepClock();
        MigrationRecords records = new MigrationRecords(dir, MigrationRecords.Retention.DEFAULT, clock).load();
        migrate(records, "good", "web", 1);
        Files.write(dir.resolve("000000000000001-000001.record"), new byte[] {(byte) 0xff, 0x01, 0x02});

        MigrationRecords again = new MigrationRecords(dir, MigrationRecords.Retention.DEFAULT, clock).load();
        assertEquals(
                List.of("good"),
                again.find("", "").stream().map(MigrationRecord::getMigrationId).toList());
        assertTrue(Files.exists(dir.resolve("000000000000001-000001.record.bad")));
    }
}
