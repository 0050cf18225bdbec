package dev.ferry.rpc;

import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.protobuf.services.HealthStatusManager;
import java.util.List;

/**
 * The standard gRPC health service ({@code grpc.health.v1.Health}, Check and Watch) of one daemon's
 * server, so that load balancers, Kubernetes probes and {@code grpc_health_probe} can ask it as
 * they ask any gRPC server. It answers for the server as a whole (the empty service name) and for
 * each of the daemon's services by full name ({@code ferry.agent.v1.AgentControl}, ...):
 * NOT_SERVING until {@link #serving}, SERVING from then, NOT_SERVING for good from {@link
 * #shuttingDown}; an unknown name is NOT_FOUND. A Watch sees each change as it happens, and at
 * the shutdown NOT_SERVING, then the end of the call (UNAVAILABLE).
 *
 * <p>The daemon adds {@link #definition()} to its server's services and {@link #allowEveryRole} to
 * its policy: whether a daemon is up is no secret from any member of the cluster, and it must be
 * askable by every role, viewers included.
 */
public final class ServingHealth {
    private final HealthStatusManager manager = new HealthStatusManager();
    private final ServerServiceDefinition definition;
    /**
     * Open Watch calls, ended at {@link #shuttingDown} once they have heard NOT_SERVING. A Watch
     * never ends by itself, and a server waits for its open calls before it terminates: left open,
     * one health checker would hold a daemon's shutdown (an agent's exit, and with it the next
     * agent process's adoption of its guests) for the server's whole grace period.
     */
    private final EndableCalls<Boolean> watches = new EndableCalls<>();

    public ServingHealth() {
        // The manager starts with the whole server SERVING; nothing is until the daemon says so.
        manager.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, ServingStatus.NOT_SERVING);
        definition = ServerInterceptors.intercept(manager.getHealthService(), new ServerInterceptor() {
            @Override
            public <Q, R> ServerCall.Listener<Q> interceptCall(
                    ServerCall<Q, R> call, Metadata headers, ServerCallHandler<Q, R> next) {
                if (!call.getMethodDescriptor()
                        .getFullMethodName()
                        .equals(HealthGrpc.getWatchMethod().getFullMethodName())) {
                    return next.startCall(call, headers);
                }
                return watches.start(call, headers, next, Boolean.TRUE);
            }
        });
    }

    /** The health service, to serve beside the daemon's own. */
    public ServerServiceDefinition definition() {
        return definition;
    }

    /** The daemon is ready: SERVING for the server and for each of {@code services} (the health service itself aside). */
    public void serving(List<ServerServiceDefinition> services) {
        for (ServerServiceDefinition s : services) {
            String name = s.getServiceDescriptor().getName();
            if (!name.equals(HealthGrpc.SERVICE_NAME)) {
                manager.setStatus(name, ServingStatus.SERVING);
            }
        }
        manager.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, ServingStatus.SERVING);
    }

    /**
     * The daemon is shutting down: NOT_SERVING for everything, and nothing changes it after. Open
     * Watch calls hear it before the server stops.
     */
    public void shuttingDown() {
        // Every watcher is sent NOT_SERVING here, before its call is ended below (in that order on its stream).
        manager.enterTerminalState();
        Status down = Status.UNAVAILABLE.withDescription("the server is shutting down");
        watches.end(w -> down);
    }

    /** Every role of the cluster may ask (Check and Watch). */
    public static AccessPolicy.Builder allowEveryRole(AccessPolicy.Builder policy) {
        return policy.allow(
                        HealthGrpc.getCheckMethod(),
                        dev.ferry.pki.Role.AGENT,
                        dev.ferry.pki.Role.COORDINATOR,
                        dev.ferry.pki.Role.OPERATOR,
                        dev.ferry.pki.Role.VIEWER)
                .allow(
                        HealthGrpc.getWatchMethod(),
                        dev.ferry.pki.Role.AGENT,
                        dev.ferry.pki.Role.COORDINATOR,
                        dev.ferry.pki.Role.OPERATOR,
                        dev.ferry.pki.Role.VIEWER);
    }
}
