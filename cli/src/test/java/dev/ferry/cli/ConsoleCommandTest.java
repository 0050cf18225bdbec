package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Instant;
import java.time.ZoneId;
import org.junit.jupiter.api.Test;

class ConsoleCommandTest {
    private static final Instant NOW = Instant.parse("2026-12-07T12:00:00Z");
    private static final ZoneId ZONE = ZoneId.of("Europe/Berlin");

    @Test
    void sinceTakesATimeAgo() {
        assertEquals(NOW.minusSeconds(90).toEpochMilli(), ConsoleCommand.sinceMillis("90s", NOW, ZONE));
        assertEquals(NOW.minusSeconds(600).toEpochMilli(), ConsoleCommand.sinceMillis("10m", NOW, ZONE));
        assertEquals(NOW.minusSeconds(5400).toEpochMilli(), ConsoleCommand.sinceMillis("1h30m", NOW, ZONE));
        assertEquals(NOW.minusSeconds(86400).toEpochMilli(), ConsoleCommand.sinceMillis("1d", NOW, ZONE));
    }

    @Test
    void sinceTakesATimeWithOrWithoutItsOffset() {
        assertEquals(
                Instant.parse("2026-12-07T10:00:00Z").toEpochMilli(),
                ConsoleCommand.sinceMillis("2026-12-07T10:00:00Z", NOW, ZONE));
        assertEquals(
                Instant.parse("2026-12-07T09:00:00Z").toEpochMilli(),
                ConsoleCommand.sinceMillis("2026-12-07T10:00", NOW, ZONE),
                "a local time is the zone's");
    }

    @Test
    void sinceRefusesWhatItCannotReadAndTheFuture() {
        CliException e = assertThrows(CliException.class, () -> ConsoleCommand.sinceMillis("yesterday", NOW, ZONE));
        assertTrue(e.getMessage().contains("--since takes a time ago"), e.getMessage());
        assertEquals(2, e.exitCode());
        assertThrows(CliException.class, () -> ConsoleCommand.sinceMillis("10x", NOW, ZONE));
        assertThrows(CliException.class, () -> ConsoleCommand.sinceMillis("2026-12-08T10:00:00Z", NOW, ZONE));
        assertThrows(CliException.class, () -> ConsoleCommand.sinceMillis("99999999999999999999d", NOW, ZONE));
    }
}
