package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `ferry agent|coordinator --config FILE` as a user meets it: errors are one line and exit 2. */
class ConfigFileCliTest {
    @TempDir
    Path dir;

    @Test
    void aDaemonWithAMisspeltOptionInItsConfigFileRefusesToStartAndSaysWhich() throws Exception {
        Path f = Files.writeString(dir.resolve("agent.conf"), "host-id = h1\nlisten = 127.0.0.1:0\ndata-dri = /x\n");
        CliRun r = CliRun.of("agent", "--config", f.toString());
        assertEquals(2, r.exit(), r.err());
        assertTrue(r.err().startsWith("ferry: " + f + " line 3: `ferry agent` has no option 'data-dri'"), r.err());
    }

    @Test
    void optionsFromTheFileAreValidatedLikeFlags() throws Exception {
        Path f = Files.writeString(
                dir.resolve("coordinator.conf"), "listen = 127.0.0.1:0\nmax-concurrent-restarts = many\n");
        CliRun r = CliRun.of("coordinator", "--config", f.toString());
        assertEquals(2, r.exit(), r.err());
        assertTrue(r.err().contains("--max-concurrent-restarts"), r.err());
        assertTrue(r.err().contains("many"), r.err());
    }

    @Test
    void helpListsTheOption() {
        CliRun r = CliRun.of("agent", "--help");
        assertEquals(0, r.exit());
        assertTrue(r.out().contains("--config=FILE"), r.out());
    }
}
