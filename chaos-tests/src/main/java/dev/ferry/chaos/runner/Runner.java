package dev.ferry.chaos.runner;

import dev.ferry.chaos.checker.Checker;
import dev.ferry.chaos.checker.Checkers;
import dev.ferry.chaos.checker.NothingLost;
import dev.ferry.chaos.checker.Violation;
import dev.ferry.chaos.history.History;
import dev.ferry.chaos.history.Leftovers;
import dev.ferry.chaos.history.ProgressSampler;
import dev.ferry.chaos.history.RecordView;
import dev.ferry.chaos.scenario.Run;
import dev.ferry.chaos.scenario.Scenario;
import dev.ferry.chaos.schedule.Schedule;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.netns.AgentSpec;
import dev.ferry.testkit.netns.NetnsCluster;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Runs scenarios on clusters of network namespaces: for each run it starts a fresh history and
 * progress sampler, plans the scenario from its seed (and prints the plan), carries it out, heals
 * every fault, waits for every VM to run again (I4's bound), samples a final window, reads the
 * records and what exists on the hosts, deletes the run's VMs and looks again, then runs the
 * checkers. Scenarios of one driver share one cluster, started on first use.
 */
public final class Runner implements AutoCloseable {
    /** How a runner builds its clusters and judges recovery. */
    public record Settings(int hosts, Duration sessionTimeout, Path logDir, PrintStream out) {
        public static Settings ci(PrintStream out) {
            return new Settings(3, Duration.ofSeconds(4), null, out);
        }

        /**
         * I4's bound: the session timeout, the failover margin (T/5), and 45 s for what a heal and a
         * restart take on a loaded 2-core machine (a daemon's JVM start, QEMU's start under TCG).
         */
        public Duration recoveryBound() {
            return Timing.scaled(
                    sessionTimeout.plus(sessionTimeout.dividedBy(5)).plusSeconds(45));
        }
    }

    /**
     * The sim agents' idle deadline in the runner's clusters ({@code ferry agent
     * --incoming-idle-timeout-ms}), a third of the default: scenario 13's silent source waits it out
     * once per run. Their guests' pre-copy at 4 MiB/s sends a window far more often.
     */
    public static final Duration INCOMING_IDLE_TIMEOUT = Duration.ofSeconds(10);

    private final Settings settings;
    private final Report report = new Report();
    private NetnsCluster qemuCluster;
    private NetnsCluster simCluster;
    private final java.util.concurrent.atomic.AtomicInteger runNumber = new java.util.concurrent.atomic.AtomicInteger();

    public Runner(Settings settings) {
        this.settings = settings;
    }

    public Report report() {
        return report;
    }

    /** The cluster for scenarios of this driver, started on first use. */
    public synchronized NetnsCluster cluster(boolean qemu) {
        if (qemu && qemuCluster == null) {
            qemuCluster = start("qemu");
        } else if (!qemu && simCluster == null) {
            simCluster = start("sim");
        }
        return qemu ? qemuCluster : simCluster;
    }

    private NetnsCluster start(String driver) {
        NetnsCluster.Builder b = NetnsCluster.builder()
                .zookeepers(3)
                .coordinators(2)
                .sessionTimeout(settings.sessionTimeout())
                .startTimeout(Timing.scaled(Duration.ofMinutes(3)));
        for (int i = 1; i <= settings.hosts(); i++) {
            AgentSpec spec = driver.equals("qemu") ? AgentSpec.qemu("host-" + i) : AgentSpec.sim("host-" + i);
            // libfaketime only where a scenario jumps clocks (sim agents): an agent's environment is
            // its QEMUs' too, and QEMU under libfaketime did not come up (stopped, killed at its QMP deadline).
            if (!driver.equals("qemu")) {
                // QEMU agents keep the default: a TCG guest's device-state save is the quiet spell
                // nobody measured against a shorter one.
                spec = spec.withFaketime()
                        .withArgs("--incoming-idle-timeout-ms", Long.toString(INCOMING_IDLE_TIMEOUT.toMillis()));
            }
            b.agent(spec.withRamTmpfs(512L << 20));
        }
        settings.out().println("chaos: starting a " + driver + " cluster of " + settings.hosts() + " hosts");
        return b.start();
    }

    /** Runs {@code scenario} once with {@code seed}; the result is also added to the report. */
    public RunResult run(Scenario scenario, long seed) {
        long began = System.nanoTime();
        Phases phases = new Phases();
        Schedule plan = scenario.plan(seed);
        settings.out().print(plan.describe());
        History history = new History();
        List<Violation> violations = new ArrayList<>();
        List<Long> recoveries = new ArrayList<>();
        String error = "";
        NetnsCluster cluster = cluster(scenario.qemu());
        phases.mark("cluster");
        String prefix = "r" + runNumber.incrementAndGet() + "-";
        Run run;
        try (ProgressSampler sampler =
                new ProgressSampler(history, cluster.agents(), Duration.ofMillis(100), prefix).start()) {
            run = new Run(cluster, history, sampler, prefix);
            try {
                scenario.run(run, plan);
            } catch (Exception | AssertionError e) {
                error = "scenario: " + e;
            } finally {
                try {
                    run.faults().healAll();
                } catch (RuntimeException e) {
                    error = error + (error.isEmpty() ? "" : "; ") + "heal: " + e;
                }
                phases.mark("scenario and heal");
            }
            try {
                boolean undone;
                try {
                    awaitRecovery(run);
                    phases.mark("recovery");
                    Run.sleep(Duration.ofSeconds(3)); // the final window I4 counts copies in
                    sampler.sampleOnce();
                    run.readRecords();
                    phases.mark("window");
                    history.observe(dev.ferry.chaos.history.Observations.WINDOW_END, "", "", "");
                } finally {
                    undone = run.afterWindow();
                }
                if (undone) {
                    // An undo (a negative control's) sets the cluster moving again, e.g. restarting
                    // a VM on a host just activated: I5 looks once it has settled, against the
                    // records read then, not at a restart half done against a record from before it.
                    awaitRecovery(run);
                    phases.mark("undo and recovery");
                }
                Leftovers.record(cluster, history, prefix);
                phases.mark("leftovers");
                // A delete the cluster refuses for now (a copy still being stopped somewhere) is
                // asked again, as an operator would; the run fails only if the VMs outlive a minute.
                long[] nextDelete = {System.nanoTime()};
                Run.await("the run's VMs deleted", Duration.ofSeconds(60), () -> {
                    Map<String, RecordView> r = run.readRecords();
                    List<String> left =
                            run.vms().stream().filter(r::containsKey).toList();
                    if (!left.isEmpty() && System.nanoTime() - nextDelete[0] > 0) {
                        left.forEach(run.client::deleteAfterRun);
                        nextDelete[0] =
                                System.nanoTime() + Duration.ofSeconds(10).toNanos();
                    }
                    return left.isEmpty();
                });
                phases.mark("deletes");
                Run.sleep(Duration.ofSeconds(2));
                Leftovers.record(cluster, history, prefix);
                phases.mark("leftovers after deletes");
            } catch (RuntimeException e) {
                error = error + (error.isEmpty() ? "" : "; ") + "after the heal: " + e;
            }
        }
        List<Checker> checkers = Checkers.all(settings.recoveryBound(), Duration.ofSeconds(2), Duration.ofSeconds(5));
        violations.addAll(Checkers.check(checkers, history));
        NothingLost.recoveries(history).values().forEach(recoveries::add);
        phases.mark("checks");
        int faults = (int) history.faults().stream().filter(f -> f.start()).count();
        RunResult r =
                new RunResult(scenario.id(), seed, faults, violations, recoveries, error, System.nanoTime() - began);
        report.add(r);
        writeHistory(scenario, seed, history, r);
        settings.out()
                .printf(
                        "chaos: %s seed %d %s in %.0f s (%d faults)%n",
                        scenario.id(),
                        seed,
                        r.passed() ? "passed" : "FAILED " + violations + " " + error,
                        r.nanos() / 1e9,
                        faults);
        settings.out().printf("chaos: %s seed %d phases: %s%n", scenario.id(), seed, phases.describe());
        return r;
    }

    /** After the heal: every VM of the run whose record says running is seen progressing on its owner. */
    private void awaitRecovery(Run run) {
        long deadline = System.nanoTime() + settings.recoveryBound().toNanos();
        while (System.nanoTime() < deadline) {
            Map<String, RecordView> records = run.readRecords();
            boolean all = true;
            for (String vm : run.vms()) {
                RecordView r = records.getOrDefault(vm, RecordView.ABSENT);
                if (r.desiredRunning() && !run.progressing(vm, r.owner())) {
                    all = false;
                    break;
                }
            }
            if (all) {
                return;
            }
            Run.sleep(Duration.ofMillis(500));
        }
    }

    private void writeHistory(Scenario scenario, long seed, History history, RunResult r) {
        if (settings.logDir() == null) {
            return;
        }
        try {
            Files.createDirectories(settings.logDir());
            List<String> lines =
                    new ArrayList<>(scenario.plan(seed).describe().lines().toList());
            lines.addAll(history.lines());
            lines.add("result: " + (r.passed() ? "passed" : r.violations() + " " + r.error()));
            Files.write(
                    settings.logDir().resolve(scenario.id() + "-" + seed + "-" + runNumber.get() + ".history"),
                    lines,
                    StandardCharsets.UTF_8);
        } catch (java.io.IOException e) {
            settings.out().println("chaos: cannot write the history: " + e);
        }
    }

    /**
     * Runs the scenarios in turn until {@code duration} has passed (at least once each); the seed
     * of each run after the first is drawn from {@code seed}, and printed.
     */
    public Report soak(List<Scenario> scenarios, long seed, Duration duration) {
        long end = System.nanoTime() + duration.toNanos();
        SplittableRandom seeds = new SplittableRandom(seed);
        long s = seed;
        do {
            for (Scenario sc : scenarios) {
                run(sc, s);
            }
            s = seeds.nextLong() & Long.MAX_VALUE;
        } while (System.nanoTime() < end);
        return report;
    }

    @Override
    public void close() {
        if (qemuCluster != null) {
            qemuCluster.close();
        }
        if (simCluster != null) {
            simCluster.close();
        }
    }
}
