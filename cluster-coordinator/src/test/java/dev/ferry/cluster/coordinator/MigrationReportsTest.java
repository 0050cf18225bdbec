package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationRecord;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.RoundProgress;
import java.time.Duration;
import java.util.List;
import org.apache.zookeeper.CreateMode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The cluster's kept migration records in a real ZooKeeper: found by id and by VM, once each, bounded, term-guarded. */
class MigrationReportsTest {
    private ZkFixture zk;
    private ClusterStore store;
    private final ManualClocks clocks = new ManualClocks();

    @BeforeEach
    void start() throws Exception {
        zk = new ZkFixture();
        store = zk.store();
    }

    @AfterEach
    void stop() throws Exception {
        zk.close();
    }

    private MigrationReports reports(int count, Duration age) throws Exception {
        WriteGuard guard = WriteGuard.takeOffice(store, "leader", ZkFixture.latchNode(store), clocks.wallMillis());
        return new MigrationReports(guard, new MigrationReports.Retention(count, age), clocks);
    }

    private MigrationRecord finished(String id, String vm, int rounds) {
        MigrationRecord.Builder b = MigrationRecord.newBuilder()
                .setMigrationId(id)
                .setVm(vm)
                .setSource("h1")
                .setTarget("h2")
                .setStartedAtMs(clocks.wallMillis() - 1000)
                .setFinishedAtMs(clocks.wallMillis());
        for (int i = 0; i < rounds; i++) {
            b.addRounds(RoundProgress.newBuilder().setRound(i).setPagesSent(100 + i));
        }
        return b.setSummary(MigrationSummary.newBuilder()
                        .setMigrationId(id)
                        .setStatus(MigrationPhase.MIGRATION_PHASE_COMPLETED))
                .build();
    }

    @Test
    void aKeptRecordIsFoundByIdAndTheNewestByVmAndKeptOnce() throws Exception {
        MigrationReports reports = reports(10, Duration.ofDays(30));
        reports.keep(finished("op-1", "web", 3));
        clocks.pass(Duration.ofSeconds(1));
        reports.keep(finished("op-2", "web", 5));
        clocks.pass(Duration.ofSeconds(1));
        reports.keep(finished("op-3", "db", 1));

        assertEquals(3, reports.find("op-1", "").orElseThrow().getRoundsCount());
        assertEquals("op-2", reports.find("", "web").orElseThrow().getMigrationId());
        assertTrue(reports.find("op-9", "").isEmpty());
        assertTrue(reports.find("", "mail").isEmpty());

        // A new leader ending the same intent again keeps nothing more.
        reports.keep(finished("op-2", "web", 1));
        assertEquals(3, store.children(ClusterPaths.REPORTS).size());
        assertEquals(5, reports.find("op-2", "").orElseThrow().getRoundsCount());
    }

    @Test
    void theOldestGoBeyondTheCountAndThoseOlderThanTheRetention() throws Exception {
        MigrationReports reports = reports(3, Duration.ofDays(1));
        for (int i = 1; i <= 5; i++) {
            reports.keep(finished("op-" + i, "web", 1));
            clocks.pass(Duration.ofSeconds(1));
        }
        assertEquals(3, store.children(ClusterPaths.REPORTS).size());
        assertTrue(reports.find("op-2", "").isEmpty());
        assertTrue(reports.find("op-3", "").isPresent());

        clocks.pass(Duration.ofDays(1).minusMillis(2500)); // op-3 now past the day; op-4, op-5 not
        reports.keep(finished("op-6", "db", 1));
        assertEquals(
                List.of("op-4", "op-5", "op-6"),
                store.children(ClusterPaths.REPORTS).stream()
                        .sorted()
                        .map(n -> ClusterPaths.ReportName.parse(n).orElseThrow().migrationId())
                        .toList());
    }

    @Test
    void aStrayOrUnreadableNodeIsSkippedNotFatal() throws Exception {
        MigrationReports reports = reports(10, Duration.ofDays(30));
        store.commit(store.create(ClusterPaths.REPORTS + "/not-a-report", new byte[] {1}, CreateMode.PERSISTENT));
        store.commit(store.create(
                ClusterPaths.report(new ClusterPaths.ReportName(clocks.wallMillis() + 5, "web", "op-bad")),
                new byte[] {(byte) 0xff, (byte) 0xff},
                CreateMode.PERSISTENT));
        reports.keep(finished("op-1", "web", 2));
        assertEquals("op-1", reports.find("", "web").orElseThrow().getMigrationId());
        assertTrue(reports.find("op-bad", "").isEmpty());
    }

    @Test
    void aLeaderWhoseTermEndedKeepsNothing() throws Exception {
        MigrationReports stale = reports(10, Duration.ofDays(30));
        // A newer leader takes office: the old one's write is refused, and it learns it no longer leads.
        WriteGuard.takeOffice(zk.store(), "newer", ZkFixture.latchNode(store), clocks.wallMillis());
        assertThrows(NotLeaderException.class, () -> stale.keep(finished("op-1", "web", 2)));
        assertTrue(store.children(ClusterPaths.REPORTS).isEmpty());
    }
}
