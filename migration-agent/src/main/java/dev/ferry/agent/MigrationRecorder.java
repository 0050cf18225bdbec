package dev.ferry.agent;

import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationRecord;
import java.util.Optional;
import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * Builds one migration's record (what `ferry report` shows) from its events, as whoever hears
 * them sees them: the source agent that runs the migration, and the coordinator leader that relays
 * them. Finished rounds, limit changes and messages are kept; the partial updates within a round
 * are not. The record is finished by the first summary.
 */
public final class MigrationRecorder implements Consumer<MigrationEvent> {
    /**
     * Bounds that keep a record small enough for one ZooKeeper node (1 MiB) whatever a migration
     * does: pre-copy stops after tens of rounds, and the messages are one per notable event.
     */
    static final int MAX_ROUNDS = 2000;

    static final int MAX_MESSAGES = 200;
    static final int MAX_LIMIT_CHANGES = 200;

    private final LongSupplier wallMillis;
    private final MigrationRecord.Builder b;
    private MigrationRecord finished;

    /**
     * @param wallMillis the wall clock (Unix ms) the record's start and finish are told in
     */
    public MigrationRecorder(
            String migrationId,
            String vm,
            String sourceHost,
            String targetHost,
            MigrationOptions options,
            LongSupplier wallMillis) {
        this.wallMillis = wallMillis;
        this.b = MigrationRecord.newBuilder()
                .setMigrationId(migrationId)
                .setVm(vm)
                .setSource(sourceHost)
                .setTarget(targetHost)
                .setOptions(options)
                .setStartedAtMs(wallMillis.getAsLong());
    }

    @Override
    public synchronized void accept(MigrationEvent e) {
        if (finished != null) {
            return;
        }
        if (e.hasRound() && !e.getRound().getPartial() && b.getRoundsCount() < MAX_ROUNDS) {
            b.addRounds(e.getRound());
        }
        if (e.hasLimits()) {
            if (b.getLimitChangesCount() < MAX_LIMIT_CHANGES) {
                b.addLimitChanges(e.getLimits());
            }
        } else if (!e.getMessage().isEmpty() && !e.hasSummary() && b.getMessagesCount() < MAX_MESSAGES) {
            b.addMessages(e.getMessage());
        }
        if (e.hasSummary()) {
            finished = b.setSummary(e.getSummary())
                    .setFinishedAtMs(wallMillis.getAsLong())
                    .build();
        }
    }

    /** The record once a summary ended it. */
    public synchronized Optional<MigrationRecord> finished() {
        return Optional.ofNullable(finished);
    }

    /** The record as it stands: finished, or running so far. */
    public synchronized MigrationRecord now() {
        return finished != null ? finished : b.build();
    }
}
