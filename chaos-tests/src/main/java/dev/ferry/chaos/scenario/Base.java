package dev.ferry.chaos.scenario;

import dev.ferry.chaos.schedule.Schedule;
import dev.ferry.chaos.workload.Client;
import dev.ferry.testkit.netns.Daemon;
import dev.ferry.testkit.netns.NetnsHost;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/** What scenarios share: their identity, and helpers for the steps they take. */
abstract class Base implements Scenario {
    private final String id;
    private final String description;
    private final boolean qemu;

    Base(String id, boolean qemu, String description) {
        this.id = id;
        this.qemu = qemu;
        this.description = description;
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public boolean qemu() {
        return qemu;
    }

    Schedule.Planner planner(long seed) {
        return new Schedule.Planner(seed, id);
    }

    static final List<String> HOSTS = List.of("host-1", "host-2", "host-3");

    /** A small sim guest that takes a while to migrate at {@code --max-bandwidth 4M}. */
    static final String[] SLOW_SIM = {"--dirty-rate", "1M", "--working-set", "16M"};

    /** The test guest, small (TCG is slow). */
    static final String[] SMALL_QEMU = {"--dirty-rate", "1M", "--working-set", "8M"};

    /**
     * Starts {@code ferry migrate} of {@code vm} to {@code to} in the background and returns once
     * the destination has logged its prepare: pre-copy begins within milliseconds of that line. A
     * seeded "mid pre-copy" delay counts from here, not from the command's invocation: the command's
     * JVM takes seconds to start on a loaded machine, and delays counted from it put the faults of
     * scenarios 1, 2 and 4 (seed 1) before the migration had begun ("not alive", 0.00 s in) or
     * in the prepare.
     */
    static CompletableFuture<Client.Result> migrateUntilPrepared(Run run, String vm, String to, String... options) {
        dev.ferry.testkit.netns.AgentDaemon destination = run.agent(to);
        long mark = Run.logMark(destination);
        CompletableFuture<Client.Result> m = background(() -> run.client.migrate(vm, to, options));
        Run.awaitLog(
                destination,
                mark,
                java.util.regex.Pattern.compile("expecting " + java.util.regex.Pattern.quote(vm) + " from "),
                Duration.ofMinutes(1));
        return m;
    }

    /**
     * Records the step a failed migration names ("failed after 7.2 s: precopy: ..."), so the history
     * shows where the fault landed.
     */
    static Client.Result observeEnd(Run run, String vm, Client.Result r) {
        String line = (r.command().stdout() + r.command().stderr())
                .lines()
                .filter(l -> l.contains(" failed after ") || l.contains(" cancelled after "))
                .findFirst()
                .orElse(r.ok() ? "(completed)" : "(no failure line)");
        run.history().observe("migration-end", vm, "", line);
        return r;
    }

    static CompletableFuture<Client.Result> background(Supplier<Client.Result> op) {
        CompletableFuture<Client.Result> f = new CompletableFuture<>();
        Thread.ofPlatform().daemon().name("ch-op").start(() -> {
            try {
                f.complete(op.get());
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        return f;
    }

    static Client.Result join(CompletableFuture<Client.Result> f, Duration timeout) throws Exception {
        return f.get(dev.ferry.testing.Timing.scaled(timeout).toMillis(), TimeUnit.MILLISECONDS);
    }

    static void sleepMs(long ms) {
        Run.sleep(Duration.ofMillis(ms));
    }

    /** The coordinator replica that leads now (from {@code ferry cluster status --json}). */
    static Daemon leader(Run run) {
        var status = run.cluster().cliInShell(Duration.ofMinutes(2), List.of("cluster", "status", "--json"));
        if (!status.ok()) {
            throw new IllegalStateException(status.describe());
        }
        String out = status.stdout();
        for (Daemon d : run.cluster().coordinators()) {
            if (out.contains("\"leader\" : \"" + d.host().address())
                    || out.contains("\"leader\":\"" + d.host().address())) {
                return d;
            }
        }
        throw new IllegalStateException("no leader in " + out);
    }

    static List<NetnsHost> zkHosts(Run run) {
        return run.cluster().zookeepers().stream().map(Daemon::host).toList();
    }

    /** The copy of {@code vm} on {@code host} progressed during the last second (from its console). */
    static void requireProgress(Run run, String vm, String host, String when) {
        if (!run.progressing(vm, host)) {
            throw new IllegalStateException(vm + " did not progress on " + host + " " + when);
        }
    }
}
