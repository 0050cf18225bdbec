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
        String out = run.cluster().cliOk("cluster", "status", "--json");
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
