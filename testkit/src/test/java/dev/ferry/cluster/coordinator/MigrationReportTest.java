package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.client.AgentClient;
import dev.ferry.cluster.client.CoordinatorCallException;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationRecord;
import dev.ferry.proto.agent.MigrationRecordsRequest;
import dev.ferry.proto.coordinator.MigrateRequest;
import dev.ferry.proto.coordinator.MigrationReport;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.TestCluster;
import io.grpc.Status;
import java.time.Duration;
import org.apache.curator.framework.CuratorFramework;
import org.junit.jupiter.api.Test;

/**
 * GetMigrationReport over the real coordinator and agents: the record the cluster kept, by id or by
 * VM, still there with the source gone; without one, the source's, or the coordinator's summary and
 * a note saying why; an unknown name NOT_FOUND.
 */
class MigrationReportTest {
    @Test
    void theClustersRecordOutlivesTheSourceAndWithoutOneTheCoordinatorsSummaryAndWhy() throws Exception {
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

            // Finished: the cluster's record, with the rounds the source kept of it too.
            MigrationReport byVm = client.report("rep");
            assertEquals("op-rep-1", byVm.getRecord().getMigrationId());
            assertEquals("the cluster (ZooKeeper)", byVm.getKeptBy());
            assertFalse(byVm.getRecord().getRoundsList().isEmpty(), byVm.toString());
            assertEquals(
                    MigrationPhase.MIGRATION_PHASE_COMPLETED,
                    byVm.getRecord().getSummary().getStatus());
            assertEquals(byVm, client.report("op-rep-1"));
            try (AgentClient h1 = new AgentClient(
                    Transport.plaintext(), "h1", cluster.agent("h1").agent().endpoint(), Duration.ofSeconds(10))) {
                MigrationRecord source = h1.migrationRecords(MigrationRecordsRequest.newBuilder()
                                .setMigrationId("op-rep-1")
                                .build())
                        .getFirst();
                assertEquals(source.getRoundsList(), byVm.getRecord().getRoundsList());
                assertEquals(source.getSummary(), byVm.getRecord().getSummary());
            }

            // The source gone, the report is as it was: the cluster kept it (the source's copy went with it).
            cluster.agent("h1").close();
            Timing.await(
                    "h1 is gone",
                    Duration.ofSeconds(30),
                    () -> client.hosts().stream().noneMatch(h -> h.getId().equals("h1") && h.getAlive()));
            assertEquals(byVm, client.report("op-rep-1"));

            // A migration the cluster kept no record of (one from before it kept them): the source is
            // asked, and when it is gone the coordinator's summary says what it can, and why no more.
            CuratorFramework zk = cluster.zkClients(Duration.ofSeconds(10)).retrying();
            zk.start();
            try {
                for (String n : zk.getChildren().forPath(ClusterPaths.REPORTS)) {
                    zk.delete().forPath(ClusterPaths.REPORTS + "/" + n);
                }
            } finally {
                zk.close();
            }
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
