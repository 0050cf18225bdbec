package dev.ferry.chaos.scenario;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.ferry.chaos.runner.RunResult;
import dev.ferry.chaos.runner.Runner;
import dev.ferry.testkit.netns.NetnsCluster;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Timeout;

/**
 * A group of scenarios sharing one runner (and so one cluster per driver); one seed each in CI.
 * A scenario's own waits are bounded (each scaled by the timing multiplier); the suite's default
 * 5-minute cap per test is too short for the longest of them on a loaded 2-core machine (3 cancels
 * with their recoveries took 193 s), so chaos tests get 10.
 */
@Timeout(value = 10, unit = TimeUnit.MINUTES)
abstract class ChaosGroup {
    static final long SEED = Long.getLong("ferry.chaos.seed", 1);
    static Runner runner;

    @BeforeAll
    static void up() {
        String why = NetnsCluster.unavailableReason();
        assumeTrue(why == null, why);
        Runner.Settings s = Runner.Settings.ci(System.out);
        runner = new Runner(
                new Runner.Settings(s.hosts(), s.sessionTimeout(), Path.of("target", "chaos-histories"), System.out));
    }

    @AfterAll
    static void down() {
        if (runner != null) {
            System.out.print(runner.report().table());
            runner.close();
            runner = null;
        }
    }

    static RunResult pass(String id) {
        RunResult r = runner.run(Scenarios.select(id).getFirst(), SEED);
        assertTrue(r.passed(), r.scenario() + " seed " + r.seed() + ": " + r.violations() + " " + r.error());
        return r;
    }
}
