package dev.ferry.agent;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;

/** A control request this agent refuses or cannot carry out; maps to one gRPC status. */
public final class AgentException extends Exception {
    private final Status.Code code;

    public AgentException(Status.Code code, String message) {
        super(message);
        this.code = code;
    }

    public AgentException(Status.Code code, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    public Status.Code code() {
        return code;
    }

    public StatusRuntimeException toStatus() {
        return Status.fromCode(code).withDescription(getMessage()).asRuntimeException();
    }

    public static AgentException notFound(String vm) {
        return new AgentException(Status.Code.NOT_FOUND, "no VM named '" + vm + "' on this host");
    }
}
