package dev.ferry.cli;

import dev.ferry.cluster.store.ClusterPaths;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicReference;
import picocli.CommandLine.Option;

/**
 * {@code --request-id}: the name under which the cluster runs a mutating command, at most once.
 * Every command sends one (a new random id by default) and the coordinator keeps each request's
 * outcome, so the same command sent again with the same id returns the first outcome instead of
 * acting twice. An operator whose command lost its reply (a dropped connection, a deadline) is told
 * the id and re-runs the command with it to learn what happened; scripts can pass their own ids
 * to make their retries safe.
 */
public final class RequestIdOption {
    /**
     * The id the last mutating command of this process sent (for the unknown-outcome hint). A
     * reference held in a final field: {@link #id} is synchronized on its instance, which guards
     * that instance's id, not this process-wide value.
     */
    private static final AtomicReference<String> LAST_SENT = new AtomicReference<>();

    @Option(
            names = "--request-id",
            paramLabel = "ID",
            description = "Run this request at most once under ID (letters, digits, '.', '_', '-'); "
                    + "the same command with the same ID returns the first outcome. Default: a new id.")
    String given;

    private String id;

    /** The id to send: the one given, checked, or a new one; the same for every call of one command. */
    public synchronized String id() {
        if (id == null) {
            if (given != null) {
                try {
                    id = ClusterPaths.checkIntentId(given);
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("--request-id: " + e.getMessage(), e);
                }
            } else {
                id = UUID.randomUUID().toString();
            }
            LAST_SENT.set(id);
        }
        return id;
    }

    /** The id of this process's mutating command, or null if it sent none. */
    static String lastSent() {
        return LAST_SENT.get();
    }
}
