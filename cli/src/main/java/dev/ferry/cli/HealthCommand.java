package dev.ferry.cli;

import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalPki;
import dev.ferry.pki.Role;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.PeerRequirement;
import dev.ferry.rpc.Transport;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(
        name = "health",
        description = {
            "Ask an agent or coordinator whether it serves, with the standard gRPC health check (grpc.health.v1): "
                    + "prints SERVING and exits 0, or prints what it answered (NOT_SERVING while it starts or shuts "
                    + "down) and exits 1.",
            "Talks TLS as every command does: --cert/--key/--ca (any role of the cluster may ask), the operator "
                    + "certificate of a local cluster (--cluster DIR or $FERRY_CLUSTER), or --insecure."
        })
final class HealthCommand implements java.util.concurrent.Callable<Integer> {
    @Option(names = "--endpoint", required = true, paramLabel = "HOST:PORT", description = "The daemon's gRPC address.")
    String endpoint;

    @Option(
            names = "--service",
            paramLabel = "NAME",
            defaultValue = "",
            description = "One of its services by full name (ferry.agent.v1.AgentControl, ...); default: the daemon "
                    + "as a whole.")
    String service;

    @Option(
            names = "--cluster",
            paramLabel = "DIR",
            description = "A local cluster's directory, for its operator certificate (default: $FERRY_CLUSTER when "
                    + "no TLS files are given).")
    Path cluster;

    @Option(
            names = "--timeout-ms",
            defaultValue = "5000",
            description = "How long to wait (default: ${DEFAULT-VALUE}).")
    long timeoutMs;

    @Mixin
    TlsOptions tls;

    @Override
    public Integer call() throws Exception {
        Endpoint target;
        try {
            target = Endpoint.parse(endpoint);
        } catch (IllegalArgumentException e) {
            throw new CliException("--endpoint: " + e.getMessage(), 2);
        }
        ManagedChannel ch = transport().channel(target, PeerRequirement.anyOf(Role.AGENT, Role.COORDINATOR));
        try {
            ServingStatus s = HealthGrpc.newBlockingStub(ch)
                    .withDeadlineAfter(timeoutMs, TimeUnit.MILLISECONDS)
                    .check(HealthCheckRequest.newBuilder().setService(service).build())
                    .getStatus();
            System.out.println(s.name());
            return s == ServingStatus.SERVING ? 0 : 1;
        } catch (StatusRuntimeException e) {
            throw new CliException(endpoint + (service.isEmpty() ? "" : " (" + service + ")") + ": "
                    + e.getStatus().getCode()
                    + (e.getStatus().getDescription() == null
                            ? ""
                            : ": " + e.getStatus().getDescription()));
        } finally {
            ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    private Transport transport() {
        if (tls.given() || tls.insecure) {
            return tls.client("ferry health");
        }
        Path dir = cluster;
        if (dir == null) {
            String env = System.getenv("FERRY_CLUSTER");
            dir = env == null || env.isBlank() ? null : Path.of(env);
        }
        if (dir != null) {
            return LocalPki.transport(ClusterFile.read(dir));
        }
        return tls.client("ferry health"); // says which TLS files it needs
    }
}
