package dev.ferry.agent;

import dev.ferry.metrics.AgentMetrics;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.RoundProgress;
import dev.ferry.proto.migration.MigrationStep;
import java.util.Locale;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Turns one outgoing migration's progress events (the sender's round reports, and its ticker's
 * reports of a long round as it goes) and its summary into the agent's metrics. It only listens:
 * the events reach the caller unchanged, whatever happens here.
 */
final class ProgressMetrics {
    private static final Logger log = LoggerFactory.getLogger(ProgressMetrics.class);

    private final AgentMetrics.OutgoingMigration metrics;
    private final int pageSize;
    /** Guest bytes of the rounds that have ended; the round in progress adds its own. */
    private long endedRoundsBytes;

    ProgressMetrics(AgentMetrics.OutgoingMigration metrics, int pageSize) {
        this.metrics = metrics;
        this.pageSize = pageSize;
    }

    /** {@code events} with this listening first; a failure here never keeps an event from the caller. */
    Consumer<MigrationEvent> observing(Consumer<MigrationEvent> events) {
        return e -> {
            try {
                onEvent(e);
            } catch (RuntimeException ex) {
                log.debug("migration metrics: {}", ex.toString());
            }
            events.accept(e);
        };
    }

    synchronized void onEvent(MigrationEvent e) {
        if (e.getPhase() != MigrationPhase.MIGRATION_PHASE_ROUND || !e.hasRound()) {
            return;
        }
        RoundProgress r = e.getRound();
        double wireRate = r.getRoundMs() > 0 ? r.getWireBytes() * 1000.0 / r.getRoundMs() : 0;
        if (r.getPartial()) {
            // A long round as it goes: what is left of it is what it planned less what it sent.
            long left = Math.max(0, r.getPagesPlanned() - r.getPagesSent()) * pageSize;
            metrics.progress(r.getRound(), endedRoundsBytes + r.getBytesSent(), left, wireRate, r.getTotalWireBytes());
            return;
        }
        endedRoundsBytes += r.getBytesSent();
        // A round's end: what remains is what the guest dirtied meanwhile (0 after the final round).
        metrics.progress(r.getRound(), endedRoundsBytes, r.getRemainingBytes(), wireRate, r.getTotalWireBytes());
        metrics.measured(r.getDirtyRateBytesPerSec(), r.getExpectedDowntimeMs() / 1000.0);
    }

    /**
     * How the migration ended.
     *
     * @param memoryMismatch the destination's RAM digest differed from the source's
     */
    void ended(MigrationSummary s, boolean memoryMismatch) {
        switch (s.getStatus()) {
            case MIGRATION_PHASE_COMPLETED ->
                metrics.succeeded(
                        s.getDowntimeMs() / 1000.0,
                        s.getFinalPagesMs() / 1000.0,
                        s.getDeviceStateMs() / 1000.0,
                        s.getCommitMs() / 1000.0,
                        s.getResumeMs() / 1000.0,
                        s.getTotalMs() / 1000.0,
                        s.getMemoryVerified());
            case MIGRATION_PHASE_CANCELLED -> metrics.cancelled();
            default -> metrics.failed(stepName(s.getFailedStep()), memoryMismatch);
        }
    }

    /** "final_pages" for MIGRATION_STEP_FINAL_PAGES: the step as docs and labels name it. */
    static String stepName(MigrationStep step) {
        if (step == MigrationStep.MIGRATION_STEP_INVALID || step == MigrationStep.UNRECOGNIZED) {
            return "unknown";
        }
        return step.name().substring("MIGRATION_STEP_".length()).toLowerCase(Locale.ROOT);
    }
}
