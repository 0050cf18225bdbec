package dev.ferry.cluster.store;

/**
 * A record in ZooKeeper that this Ferry cannot read: not protobuf of the expected type, or a
 * schema version it does not know. Never guessed at: a newer writer may have changed a meaning.
 */
public final class RecordException extends RuntimeException {
    private final String path;

    public RecordException(String path, String message, Throwable cause) {
        super("cannot read " + path + ": " + message, cause);
        this.path = path;
    }

    public String path() {
        return path;
    }
}
