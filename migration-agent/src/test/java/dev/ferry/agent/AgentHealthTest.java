package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.pki.CertificateAuthority;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.Role;
import dev.ferry.rpc.PeerRequirement;
import dev.ferry.rpc.Transport;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A real agent's grpc.health.v1 service over mutual TLS, asked as a health checker would, through its shutdown. */
class AgentHealthTest {
    @TempDir
    static Path dir;

    static Credentials hostA;
    static Credentials hostB;
    static Credentials viewer;
    static Credentials operator;

    private final List<AutoCloseable> closing = new ArrayList<>();

    @BeforeAll
    static void issue() {
        Clock utc = Clock.systemUTC();
        CertificateAuthority ca = CertificateAuthority.create(dir.resolve("ca"), "lab", Duration.ofDays(2), utc);
        hostA = ca.issue("host-a", Role.AGENT, Duration.ofDays(1), List.of(), List.of(), dir.resolve("a"), utc);
        hostB = ca.issue("host-b", Role.AGENT, Duration.ofDays(1), List.of(), List.of(), dir.resolve("b"), utc);
        viewer = ca.issue("bob", Role.VIEWER, Duration.ofDays(1), List.of(), List.of(), dir.resolve("v"), utc);
        operator = ca.issue("alice", Role.OPERATOR, Duration.ofDays(1), List.of(), List.of(), dir.resolve("o"), utc);
    }

    @AfterEach
    void close() throws Exception {
        for (AutoCloseable c : closing.reversed()) {
            c.close();
        }
    }

    private ManagedChannel channel(Credentials as, Agent agent) {
        ManagedChannel ch = Transport.mutualTls(as).channel(agent.endpoint(), PeerRequirement.agent(agent.hostId()));
        closing.add(() -> ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS));
        return ch;
    }

    private static ServingStatus check(ManagedChannel ch, String service) {
        return HealthGrpc.newBlockingStub(ch)
                .withDeadlineAfter(20, TimeUnit.SECONDS)
                .check(HealthCheckRequest.newBuilder().setService(service).build())
                .getStatus();
    }

    @Test
    void servingForTheAgentAndEachOfItsServicesThenNotServingAtShutdownThenGone() throws Exception {
        AgentPair pair = new AgentPair(
                Transport.mutualTls(hostA),
                Transport.mutualTls(hostB),
                Transport.mutualTls(operator),
                d -> new SimDriver(),
                c -> c);
        boolean closed = false;
        try {
            ManagedChannel byViewer = channel(viewer, pair.a);
            assertEquals(ServingStatus.SERVING, check(byViewer, ""));
            assertEquals(ServingStatus.SERVING, check(byViewer, "ferry.agent.v1.AgentControl"));
            assertEquals(
                    ServingStatus.SERVING,
                    check(byViewer, MigrationStreamRpc.SERVICE.descriptor().getName()));
            // Another agent and an operator may ask too.
            assertEquals(ServingStatus.SERVING, check(channel(hostB, pair.a), ""));
            assertEquals(ServingStatus.SERVING, check(channel(operator, pair.a), ""));

            BlockingQueue<Object> seen = new LinkedBlockingQueue<>();
            HealthGrpc.newStub(byViewer)
                    .watch(HealthCheckRequest.newBuilder().setService("").build(), new StreamObserver<>() {
                        @Override
                        public void onNext(HealthCheckResponse r) {
                            seen.add(r.getStatus());
                        }

                        @Override
                        public void onError(Throwable t) {
                            seen.add(Status.fromThrowable(t).getCode());
                        }

                        @Override
                        public void onCompleted() {
                            seen.add("completed");
                        }
                    });
            assertEquals(ServingStatus.SERVING, seen.poll(20, TimeUnit.SECONDS));

            long t0 = System.nanoTime();
            pair.close();
            closed = true;
            System.out.printf(
                    "both agents closed in %d ms with a health watch open%n", (System.nanoTime() - t0) / 1_000_000);
            // The watcher heard the shutdown before the server went, then its call ended: an open
            // watch does not hold the agent's shutdown for the server's grace period.
            assertEquals(ServingStatus.NOT_SERVING, seen.poll(20, TimeUnit.SECONDS));
            assertEquals(Status.Code.UNAVAILABLE, seen.poll(20, TimeUnit.SECONDS));
            StatusRuntimeException gone =
                    assertThrows(StatusRuntimeException.class, () -> check(channel(viewer, pair.b), ""));
            assertEquals(Status.Code.UNAVAILABLE, gone.getStatus().getCode());
        } finally {
            if (!closed) {
                pair.close();
            }
        }
    }
}
