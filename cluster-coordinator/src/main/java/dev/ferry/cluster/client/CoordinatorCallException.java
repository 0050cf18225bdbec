package dev.ferry.cluster.client;

import io.grpc.Status;

/** A call to the coordinator failed; the message says why in one line. */
public final class CoordinatorCallException extends RuntimeException {
    private final Status.Code code;

    public CoordinatorCallException(Status.Code code, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    public Status.Code code() {
        return code;
    }
}
