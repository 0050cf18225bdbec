package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ferry agent --incoming-idle-timeout-ms}: a value too short to tell a lost source from a
 * busy machine is refused before the agent starts; its effect (a silent source let go of at that
 * deadline) is proved on real agents by chaos scenario 13, whose cluster sets it.
 */
class IncomingIdleTimeoutOptionTest {
    @TempDir
    Path dir;

    @Test
    void anIdleDeadlineTooShortIsRefusedBeforeTheAgentStarts() {
        CliRun r = CliRun.of(
                "agent",
                "--host-id",
                "h1",
                "--listen",
                "127.0.0.1:0",
                "--single-machine",
                "--data-dir",
                dir.toString(),
                "--incoming-idle-timeout-ms",
                "500");
        assertEquals(2, r.exit(), r.err());
        assertTrue(r.err().contains("--incoming-idle-timeout-ms must be at least 2000"), r.err());
    }

    @Test
    void helpGivesTheDefault() {
        CliRun r = CliRun.of("agent", "--help");
        assertEquals(0, r.exit());
        assertTrue(r.out().contains("--incoming-idle-timeout-ms"), r.out());
        assertTrue(r.out().contains("(default: 30000)"), r.out());
    }
}
