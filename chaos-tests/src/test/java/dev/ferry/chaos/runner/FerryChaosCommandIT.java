package dev.ferry.chaos.runner;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * The soak's entry point as an operator runs it: `./ferry chaos` through the script, from the
 * packaged jars (so this runs in Maven's integration-test phase, after chaos-tests is packaged).
 * Scenario 5 because it reads the source agent's log (it cuts the network once the source logs
 * its pause). Regressions: the script once put the CLI's jar on the class path twice, logback
 * printed its status into stdout, the runner could parse no command's --json output, and every
 * soak run failed while the JUnit scenarios (another class path) passed; then, with the jar once,
 * logback was missing from the class path, daemons logged nothing, and scenario 5 never saw the
 * pause.
 */
class FerryChaosCommandIT {
    @Test
    @Timeout(value = 10, unit = TimeUnit.MINUTES)
    void theChaosCommandRunsScenario5AndPrintsItsTable() throws Exception {
        Path repo = Path.of("").toAbsolutePath().getParent();
        assertTrue(Files.isExecutable(repo.resolve("ferry")), "run from chaos-tests/ in the repository: " + repo);
        Path out = Files.createTempFile("ferry-chaos", ".out");
        ProcessBuilder pb = new ProcessBuilder(
                        "./ferry",
                        "chaos",
                        "--seed",
                        Long.toString(Long.getLong("ferry.chaos.seed", 1)),
                        "--scenarios",
                        "5")
                .directory(repo.toFile())
                .redirectErrorStream(true)
                .redirectOutput(out.toFile());
        // The jars Maven just built, as they are: no rebuild from inside a build.
        pb.environment().put("FERRY_NO_BUILD", "1");
        Process p = pb.start();
        boolean ended = p.waitFor(9, TimeUnit.MINUTES);
        if (!ended) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
        String text = Files.readString(out);
        assertTrue(ended, "ferry chaos did not end within 9 minutes:\n" + tail(text));
        assertEquals(0, p.exitValue(), tail(text));
        assertTrue(text.contains("chaos: 5-partition-at-switchover seed "), tail(text));
        assertTrue(text.contains(" passed in "), tail(text));
        assertTrue(
                text.contains("scenario                      runs faults   I1   I2   I3   I4   I5 errors"), tail(text));
        Files.delete(out);
    }

    private static String tail(String s) {
        return s.length() <= 6000 ? s : s.substring(s.length() - 6000);
    }
}
