package dev.ferry.cluster.coordinator;

/**
 * This replica stopped leading while it worked (its latch node is gone or its term closed). The
 * work stops where it is; the intent stays open and the next leader finishes it.
 */
final class NotLeaderException extends RuntimeException {
    NotLeaderException(String message) {
        super(message);
    }
}
