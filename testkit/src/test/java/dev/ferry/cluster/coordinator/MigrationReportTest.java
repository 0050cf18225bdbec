package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.client.CoordinatorCallException;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.coordinator.MigrateRequest;
import dev.ferry.proto.coordinator.MigrationReport;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.TestCluster;
import io.grpc.Status;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/**
 * GetMigrationReport over the real coordinator and agents: the source's record by id or by VM;
 * with the source gone, the coordinator's summary and a note saying why; an unknown name NOT_FOUND.
 */
class MigrationReportTest {
    @Test
    void theSourcesRecordOrWithTheSourceGoneTheCoordinatorsSummaryAndWhy() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            cluster.coordinator(Duration.ofMillis(500));
            cluster.agent("h1", Duration.ofSeconds(3), false);
            cluster.agent("h2", Duration.ofSeconds(3), false);
            cluster.agent("h3", Duration.ofSeconds(3), false);
            CoordinatorClient client = cluster.client();
            cluster.create(client, TestCluster.spec("rep", 16L << 20, 100), "h1");
            client.migrate(
                    MigrateRequest.newBuilder()
                            .setVm("rep")
                            .setTargetHost("h2")
                            .setRequestId("op-rep-1")
                            .build(),
                    e -> {});

            MigrationReport byVm = client.report("rep");
            assertEquals("op-rep-1", byVm.getRecord().getMigrationId());
            assertEquals("h1", byVm.getKeptBy());
            assertFalse(byVm.getRecord().getRoundsList().isEmpty(), byVm.toString());
            assertEquals(
                    MigrationPhase.MIGRATION_PHASE_COMPLETED,
                    byVm.getRecord().getSummary().getStatus());
            assertEquals(byVm, client.report("op-rep-1"));

            cluster.agent("h1").close();
            Timing.await(
                    "h1 is gone",
                    Duration.ofSeconds(30),
                    () -> client.hosts().stream().noneMatch(h -> h.getId().equals("h1") && h.getAlive()));
            MigrationReport without = client.report("op-rep-1");
            assertEquals("", without.getKeptBy());
            assertTrue(without.getRecord().getRoundsList().isEmpty());
            assertEquals(
                    MigrationPhase.MIGRATION_PHASE_COMPLETED,
                    without.getRecord().getSummary().getStatus());
            assertTrue(without.getNote().contains("h1 is not alive"), without.getNote());

            CoordinatorCallException e =
                    assertThrows(CoordinatorCallException.class, () -> client.report("no-such-vm"));
            assertEquals(Status.Code.NOT_FOUND, e.code());
            assertTrue(
                    e.getMessage().contains("no migration of a VM named no-such-vm or with that id"), e.getMessage());
        }
    }
}
