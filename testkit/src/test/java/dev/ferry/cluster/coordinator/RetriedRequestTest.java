package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.ferry.cluster.client.CoordinatorCallException;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.coordinator.CreateVmRequest;
import dev.ferry.proto.coordinator.MigrateRequest;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.GatedAgentActions;
import dev.ferry.testkit.TestCluster;
import io.grpc.Status;
import java.time.Duration;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/** A request sent again with the same id (a client that timed out and retried) runs once. */
class RetriedRequestTest {
    @Test
    void aRetriedRequestRunsOnceAndGetsTheFirstAnswer() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            GatedAgentActions agents = new GatedAgentActions(TestCluster.grpcAgents());
            cluster.coordinator(Duration.ofMillis(500), agents);
            cluster.agent("h1", Duration.ofSeconds(3), false);
            cluster.agent("h2", Duration.ofSeconds(3), false);
            CoordinatorClient client = cluster.client();

            CreateVmRequest create = CreateVmRequest.newBuilder()
                    .setSpec(TestCluster.spec("once", 16L << 20, 100))
                    .setStart(true)
                    .setHost("h1")
                    .setRequestId(UUID.randomUUID().toString())
                    .build();
            VmView first = client.createVm(create);
            VmView again = client.createVm(create);
            assertEquals(first.getOwner(), again.getOwner());
            assertEquals(1, again.getEpoch());
            assertEquals(1, agents.creates(), "the agent was asked to create the VM once");

            // The same migration sent twice at once: one migration, both callers get its outcome.
            MigrateRequest migrate = MigrateRequest.newBuilder()
                    .setVm("once")
                    .setTargetHost("h2")
                    .setRequestId(UUID.randomUUID().toString())
                    .build();
            CompletableFuture<MigrationEvent> a = CompletableFuture.supplyAsync(() -> client.migrate(migrate, e -> {}));
            CompletableFuture<MigrationEvent> b = CompletableFuture.supplyAsync(() -> client.migrate(migrate, e -> {}));
            long bound = Timing.seconds(60).toMillis();
            for (MigrationEvent e : List.of(
                    a.get(bound, java.util.concurrent.TimeUnit.MILLISECONDS),
                    b.get(bound, java.util.concurrent.TimeUnit.MILLISECONDS))) {
                assertEquals(
                        MigrationPhase.MIGRATION_PHASE_COMPLETED, e.getSummary().getStatus(), e.toString());
            }
            VmView moved = client.vm("once");
            assertEquals("h2", moved.getOwner());
            assertEquals(2, moved.getEpoch(), "migrated once, not twice");
            // Sent again after it finished: the recorded outcome, nothing runs.
            assertEquals(
                    MigrationPhase.MIGRATION_PHASE_COMPLETED,
                    client.migrate(migrate, e -> {}).getSummary().getStatus());
            assertEquals(2, client.vm("once").getEpoch());

            CoordinatorCallException reused =
                    assertThrows(CoordinatorCallException.class, () -> client.stopVm("once", create.getRequestId()));
            assertEquals(Status.Code.INVALID_ARGUMENT, reused.code());
        }
    }
}
