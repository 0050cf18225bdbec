package dev.ferry.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/**
 * CI once failed on a scrape taken while a migration ended: it held the migration's processed
 * bytes but not its total (the gauges were removed one by one between the two reads). A running
 * migration's series are now read and changed under one lock: a scrape holds all of them or none.
 */
class TornMigrationScrapeTest {
    /** The series every running migration has from its start (the expected pause comes later). */
    private static final List<String> SERIES = List.of(
            "ferry_vmi_migration_data_processed_bytes",
            "ferry_vmi_migration_data_remaining_bytes",
            "ferry_vmi_migration_data_total_bytes",
            "ferry_vmi_migration_memory_transfer_rate_bytes",
            "ferry_vmi_migration_disk_transfer_rate_bytes",
            "ferry_vmi_migration_dirty_memory_rate_bytes",
            "ferry_vmi_migration_round",
            "ferry_vmi_migration_transferred_bytes");

    @Test
    void aScrapeWhileMigrationsStartAndEndSeesAllOfOnesSeriesOrNone() throws Exception {
        AgentMetrics metrics = new AgentMetrics("host-a", "sim", "test");
        AtomicBoolean stop = new AtomicBoolean();
        Thread churn = Thread.ofPlatform().start(() -> {
            while (!stop.get()) {
                try (AgentMetrics.OutgoingMigration m = metrics.outgoing("web", 16L << 20)) {
                    m.progress(1, 4096, 8192, 1e6, 2048);
                }
            }
        });
        int seen = 0;
        int notSeen = 0;
        try {
            for (int i = 0; i < 1000; i++) {
                Exposition e = Exposition.parse(metrics.scrape());
                long present = SERIES.stream()
                        .filter(s -> e.value(s, "vm", "web").isPresent())
                        .count();
                double running =
                        e.value("ferry_vmi_migrations_in_running_phase").orElseThrow();
                if (present == 0) {
                    assertEquals(0.0, running, "no series, yet counted running");
                    notSeen++;
                } else {
                    assertEquals(SERIES.size(), present, "a scrape held only some of a migration's series");
                    assertEquals(1.0, running);
                    seen++;
                }
            }
        } finally {
            stop.set(true);
            churn.join();
        }
        assertTrue(seen + notSeen == 1000, seen + " + " + notSeen);
    }
}
