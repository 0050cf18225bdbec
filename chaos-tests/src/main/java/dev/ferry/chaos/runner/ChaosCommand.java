package dev.ferry.chaos.runner;

import dev.ferry.chaos.scenario.Scenario;
import dev.ferry.chaos.scenario.Scenarios;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code ferry chaos}: the soak. Runs the scenarios on clusters of network namespaces (needs root,
 * iproute2, nftables, tc, faketime; QEMU for the QEMU scenarios) until the duration has passed,
 * prints each run's seed and schedule and, at the end, the table; exits 1 on any violation or error.
 */
@Command(
        name = "chaos",
        description = "Run the chaos scenarios (faults, workload, checkers I1-I5) on a cluster of network namespaces.")
public final class ChaosCommand implements Callable<Integer> {
    @Option(
            names = "--seed",
            defaultValue = "1",
            description = "The first run's seed (later runs' seeds are drawn from it).")
    long seed;

    @Option(
            names = "--duration",
            defaultValue = "0s",
            description = "Keep running the scenarios this long (e.g. 1h); 0: once each.")
    String duration;

    @Option(names = "--hosts", defaultValue = "3", description = "Agents per cluster (at least 3).")
    int hosts;

    @Option(names = "--scenarios", defaultValue = "", description = "Numbers or ids, e.g. 1,7,10 (default: all).")
    String scenarios;

    @Option(
            names = "--session-timeout-ms",
            defaultValue = "4000",
            description = "The agents' ZooKeeper session timeout.")
    long sessionMs;

    @Option(names = "--history-dir", description = "Write each run's history here.")
    Path historyDir;

    @Override
    public Integer call() {
        if (hosts < 3) {
            throw new IllegalArgumentException("--hosts must be at least 3");
        }
        List<Scenario> list = Scenarios.select(scenarios);
        Duration d = parse(duration);
        System.out.println("chaos: seed " + seed + ", scenarios "
                + list.stream().map(Scenario::id).toList() + ", duration " + d);
        try (Runner runner =
                new Runner(new Runner.Settings(hosts, Duration.ofMillis(sessionMs), historyDir, System.out))) {
            // Sim scenarios first, then QEMU ones: each driver's cluster is started once.
            List<Scenario> ordered = new java.util.ArrayList<>(
                    list.stream().filter(s -> !s.qemu()).toList());
            ordered.addAll(list.stream().filter(Scenario::qemu).toList());
            Report r = runner.soak(ordered, seed, d);
            System.out.print(r.table());
            return r.passed() ? 0 : 1;
        }
    }

    static Duration parse(String s) {
        String t = s.trim().toLowerCase(java.util.Locale.ROOT);
        long n = Long.parseLong(t.replaceAll("[a-z]+$", ""));
        return switch (t.replaceAll("^[0-9]+", "")) {
            case "ms" -> Duration.ofMillis(n);
            case "s", "" -> Duration.ofSeconds(n);
            case "m", "min" -> Duration.ofMinutes(n);
            case "h" -> Duration.ofHours(n);
            default -> throw new IllegalArgumentException("--duration: a number with ms, s, m or h, got " + s);
        };
    }
}
