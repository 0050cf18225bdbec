package dev.ferry.cli.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

class QueryMigrateTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What QEMU 7.2 answered on the source after a multifd migration of a 1 GiB guest (trimmed of nothing). */
    private static final String COMPLETED = """
      {"expected-downtime": 300, "status": "completed", "setup-time": 9, "total-time": 2952, "downtime": 3,
       "ram": {"total": 1074274304, "postcopy-requests": 0, "dirty-sync-count": 4, "multifd-bytes": 44356672,
         "pages-per-second": 31424, "downtime-bytes": 155844, "page-size": 4096, "remaining": 0,
         "postcopy-bytes": 0, "mbps": 127.14380971797486, "transferred": 46659904,
         "dirty-sync-missed-zero-copy": 0, "precopy-bytes": 46504060, "duplicate": 255861, "dirty-pages-rate": 0,
         "skipped": 0, "normal-bytes": 43954176, "normal": 10731}}
      """;

    private static final String ACTIVE_THROTTLED = """
      {"expected-downtime": 7225, "status": "active", "setup-time": 6, "total-time": 41000,
       "cpu-throttle-percentage": 60,
       "ram": {"total": 1074274304, "dirty-sync-count": 10, "multifd-bytes": 4100000000, "remaining": 406000000,
         "mbps": 841.66, "transferred": 4101000000, "duplicate": 151277, "dirty-pages-rate": 25684, "normal": 1000000}}
      """;

    @Test
    void aCompletedMigrationGivesQemusOwnFigures() throws Exception {
        QueryMigrate q = QueryMigrate.parse(JSON.readTree(COMPLETED));
        assertTrue(q.completed());
        assertTrue(q.ended());
        assertEquals(2952, q.totalTimeMs());
        assertEquals(3, q.downtimeMs());
        assertEquals(9, q.setupTimeMs());
        assertEquals(4, q.dirtySyncCount());
        assertEquals(46659904, q.ramTransferred());
        assertEquals(46659904, q.wireBytes(), "ram.transferred already holds the multifd channels' bytes");
        assertEquals(44356672, q.multifdBytes());
        assertEquals(255861, q.duplicatePages());
        assertEquals(10731, q.normalPages());
        assertEquals(0, q.cpuThrottlePercent());
        assertNull(q.error());
    }

    @Test
    void anActiveMigrationHasNoDowntimeYetAndShowsTheThrottle() throws Exception {
        QueryMigrate q = QueryMigrate.parse(JSON.readTree(ACTIVE_THROTTLED));
        assertFalse(q.ended());
        assertFalse(q.completed());
        assertEquals(0, q.downtimeMs());
        assertEquals(7225, q.expectedDowntimeMs());
        assertEquals(406000000, q.ramRemaining());
        assertEquals(60, q.cpuThrottlePercent());
        assertEquals(25684, q.dirtyPagesRate());
    }

    @Test
    void setupFailureAndCancelAreEndsWithoutRam() throws Exception {
        QueryMigrate setup = QueryMigrate.parse(JSON.readTree("{\"status\": \"setup\"}"));
        assertFalse(setup.ended());
        assertEquals(0, setup.wireBytes());
        QueryMigrate failed = QueryMigrate.parse(
                JSON.readTree("{\"status\": \"failed\", \"error-desc\": \"Unable to write to socket: Broken pipe\"}"));
        assertTrue(failed.ended());
        assertFalse(failed.completed());
        assertEquals("Unable to write to socket: Broken pipe", failed.error());
        assertTrue(
                QueryMigrate.parse(JSON.readTree("{\"status\": \"cancelled\"}")).ended());
        assertFalse(QueryMigrate.parse(JSON.readTree("{\"status\": \"cancelling\"}"))
                .ended());
        assertEquals("none", QueryMigrate.parse(JSON.readTree("{}")).status());
    }
}
