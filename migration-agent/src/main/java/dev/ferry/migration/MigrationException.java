package dev.ferry.migration;

import dev.ferry.proto.migration.MigrationStep;

/** A migration failed or was cancelled at {@link #step()}. */
public final class MigrationException extends Exception {
    private final MigrationStep step;
    private final boolean cancelled;

    public MigrationException(MigrationStep step, String message) {
        this(step, message, false, null);
    }

    public MigrationException(MigrationStep step, String message, Throwable cause) {
        this(step, message, false, cause);
    }

    public MigrationException(MigrationStep step, String message, boolean cancelled, Throwable cause) {
        super(message, cause);
        this.step = step;
        this.cancelled = cancelled;
    }

    public static MigrationException cancelled(MigrationStep step) {
        return new MigrationException(step, "cancelled by the operator", true, null);
    }

    public MigrationStep step() {
        return step;
    }

    public boolean cancelled() {
        return cancelled;
    }

    /** The step in words, for error lines: {@code MIGRATION_STEP_FINAL_PAGES} reads "final pages". */
    public static String describe(MigrationStep step) {
        return step.name().replace("MIGRATION_STEP_", "").replace('_', ' ').toLowerCase(java.util.Locale.ROOT);
    }

    /** A timeout in words, for error lines: "10 s", or "1500 ms" when not whole seconds. */
    public static String describe(java.time.Duration d) {
        return d.toMillis() % 1000 == 0 ? d.toSeconds() + " s" : d.toMillis() + " ms";
    }

    @Override
    public String getMessage() {
        return describe(step) + ": " + super.getMessage();
    }

    /** The message without the step prefix. */
    public String reason() {
        return super.getMessage();
    }
}
