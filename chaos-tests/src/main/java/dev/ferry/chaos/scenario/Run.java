package dev.ferry.chaos.scenario;

import dev.ferry.chaos.history.History;
import dev.ferry.chaos.history.ProgressSampler;
import dev.ferry.chaos.history.RecordView;
import dev.ferry.chaos.history.Records;
import dev.ferry.chaos.nemesis.ClockNemesis;
import dev.ferry.chaos.nemesis.DiskNemesis;
import dev.ferry.chaos.nemesis.Faults;
import dev.ferry.chaos.nemesis.NetemNemesis;
import dev.ferry.chaos.nemesis.PartitionNemesis;
import dev.ferry.chaos.nemesis.ProcessNemesis;
import dev.ferry.chaos.workload.Client;
import dev.ferry.testkit.netns.AgentDaemon;
import dev.ferry.testkit.netns.NetnsCluster;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.BooleanSupplier;

/**
 * What a scenario works with: the cluster, the history, the nemeses (healed by the runner), a
 * workload client, the progress sampler and the record reader. Names of the VMs a scenario
 * creates are prefixed with its run's prefix, so that scenarios sharing a cluster never collide.
 */
public final class Run {
    private final NetnsCluster cluster;
    private final History history;
    private final Faults faults;
    private final ProgressSampler sampler;
    private final Records records;
    private final String prefix;
    private final List<String> vms = new ArrayList<>();
    private final List<Runnable> undos = new ArrayList<>();
    public final ProcessNemesis processes;
    public final PartitionNemesis partitions;
    public final NetemNemesis netem;
    public final ClockNemesis clocks;
    public final DiskNemesis disks;
    public final Client client;

    public Run(NetnsCluster cluster, History history, ProgressSampler sampler, String prefix) {
        this.cluster = cluster;
        this.history = history;
        this.sampler = sampler;
        this.prefix = prefix;
        this.faults = new Faults(history);
        this.records = new Records(cluster, history, prefix);
        this.processes = faults.add(new ProcessNemesis(history, Duration.ofSeconds(90)));
        this.partitions = faults.add(new PartitionNemesis(history));
        this.netem = faults.add(new NetemNemesis(history));
        this.clocks = faults.add(new ClockNemesis(history));
        this.disks = faults.add(new DiskNemesis(history));
        this.client = new Client(cluster, history, "client-1");
    }

    public NetnsCluster cluster() {
        return cluster;
    }

    public History history() {
        return history;
    }

    public Faults faults() {
        return faults;
    }

    public ProgressSampler sampler() {
        return sampler;
    }

    public Records records() {
        return records;
    }

    /**
     * Registers what to undo once the judged window has ended: a negative control's out-of-band
     * change, which no nemesis heals (healing it first would hide it from the checker it must
     * trip), is put right by the runner after the window and before it deletes the run's VMs.
     */
    public synchronized void afterWindow(Runnable undo) {
        undos.add(undo);
    }

    /**
     * Runs (once) what {@link #afterWindow(Runnable)} registered, in reverse order; the runner calls
     * it. Returns whether there was anything to undo.
     */
    public boolean afterWindow() {
        List<Runnable> todo;
        synchronized (this) {
            todo = new ArrayList<>(undos);
            undos.clear();
        }
        java.util.Collections.reverse(todo);
        for (Runnable r : todo) {
            try {
                r.run();
            } catch (RuntimeException e) {
                history.observe("undo-failed", "", "", e.toString());
            }
        }
        return !todo.isEmpty();
    }

    /** The name of this run's VM {@code n}. */
    public String vm(String n) {
        return prefix + n;
    }

    /** VMs this run created (the runner deletes them at the end). */
    public List<String> vms() {
        return List.copyOf(vms);
    }

    public AgentDaemon agent(String host) {
        return cluster.agent(host);
    }

    /** Creates a VM on {@code host} and waits until it is seen progressing from outside. */
    public void createRunning(String name, String host, String memory, String... extra) {
        vms.add(name);
        Client.Result r = client.create(name, host, memory, extra);
        if (!r.ok()) {
            throw new IllegalStateException(
                    "create " + name + ": " + r.command().describe());
        }
        await("VM " + name + " progressing on " + host, Duration.ofSeconds(90), () -> progressing(name, host));
    }

    /** Whether a copy of {@code vm} on {@code host} moved its heartbeat within the last second or so. */
    public boolean progressing(String vm, String host) {
        Path console = agent(host).dataDir().resolve("vms").resolve(vm).resolve("console.log");
        long a = dev.ferry.chaos.history.Consoles.read(console).heartbeat();
        sleep(Duration.ofMillis(700));
        long b = dev.ferry.chaos.history.Consoles.read(console).heartbeat();
        return a >= 0 && b > a;
    }

    public Map<String, RecordView> readRecords() {
        return records.read(Duration.ofSeconds(90));
    }

    public RecordView record(String vm) {
        return readRecords().getOrDefault(vm, RecordView.ABSENT);
    }

    /** How far {@code d}'s log has been written: the mark {@link #awaitLog} reads on from. */
    public static long logMark(dev.ferry.testkit.netns.Daemon d) {
        try {
            return java.nio.file.Files.size(d.logFile());
        } catch (java.io.IOException e) {
            return 0;
        }
    }

    /**
     * Waits until {@code d} logs a line matching {@code pattern} after {@code mark}, polling every
     * 5 ms (a scenario that must act inside a migration's switchover pause reacts within a few
     * milliseconds of the line); returns the line.
     */
    public static String awaitLog(
            dev.ferry.testkit.netns.Daemon d, long mark, java.util.regex.Pattern pattern, Duration timeout) {
        long deadline =
                System.nanoTime() + dev.ferry.testing.Timing.scaled(timeout).toNanos();
        long at = mark;
        StringBuilder partial = new StringBuilder();
        while (System.nanoTime() < deadline) {
            try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(d.logFile())) {
                if (ch.size() > at) {
                    java.nio.ByteBuffer buf = java.nio.ByteBuffer.allocate((int) Math.min(1 << 20, ch.size() - at));
                    at += ch.read(buf, at);
                    partial.append(new String(buf.array(), 0, buf.position(), java.nio.charset.StandardCharsets.UTF_8));
                    int nl;
                    while ((nl = partial.indexOf("\n")) >= 0) {
                        String line = partial.substring(0, nl);
                        partial.delete(0, nl + 1);
                        if (pattern.matcher(line).find()) {
                            return line;
                        }
                    }
                }
            } catch (java.io.IOException e) {
                // the log is created at start; until then there is nothing to read
            }
            sleep(Duration.ofMillis(5));
        }
        throw new IllegalStateException("timed out waiting for " + d.name() + " to log /" + pattern + "/");
    }

    public static void await(String what, Duration timeout, BooleanSupplier condition) {
        long deadline =
                System.nanoTime() + dev.ferry.testing.Timing.scaled(timeout).toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("timed out waiting for " + what);
            }
            sleep(Duration.ofMillis(200));
        }
    }

    public static void sleep(Duration d) {
        try {
            Thread.sleep(d.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }
}
