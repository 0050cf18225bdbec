package dev.ferry.cluster.coordinator;

import io.grpc.Status;

/** A coordinator request refused or failed; one line for the operator and the gRPC status it maps to. */
public final class CoordinatorException extends Exception {
    private final Status.Code code;

    public CoordinatorException(Status.Code code, String message) {
        super(message);
        this.code = code;
    }

    public Status.Code code() {
        return code;
    }

    public static CoordinatorException noVm(String vm) {
        return new CoordinatorException(Status.Code.NOT_FOUND, "no VM named '" + vm + "' in the cluster");
    }

    public static CoordinatorException noHost(String host) {
        return new CoordinatorException(Status.Code.NOT_FOUND, "no host '" + host + "' in the cluster");
    }
}
