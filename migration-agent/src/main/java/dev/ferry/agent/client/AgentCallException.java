package dev.ferry.agent.client;

import io.grpc.Status;

/** A call to an agent failed; the message names the agent and says why in one line. */
public final class AgentCallException extends RuntimeException {
    private final Status.Code code;

    public AgentCallException(Status.Code code, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    public Status.Code code() {
        return code;
    }

    public boolean unreachable() {
        return code == Status.Code.UNAVAILABLE || code == Status.Code.DEADLINE_EXCEEDED;
    }
}
