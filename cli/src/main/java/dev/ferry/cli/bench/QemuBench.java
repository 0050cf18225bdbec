package dev.ferry.cli.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.cli.CliException;
import dev.ferry.cli.Sizes;
import dev.ferry.cli.bench.MigrationRun.Mode;
import dev.ferry.cli.bench.MigrationRun.Outcome;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.hypervisor.memory.RamFile;
import dev.ferry.hypervisor.qemu.QemuCommand;
import dev.ferry.hypervisor.qemu.QemuDriver;
import dev.ferry.hypervisor.qemu.QemuProcess;
import dev.ferry.hypervisor.qemu.qmp.QmpClient;
import dev.ferry.hypervisor.qemu.qmp.QmpEvent;
import dev.ferry.hypervisor.qemu.qmp.QmpException;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.vm.VmSpec;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalLong;
import java.util.UUID;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;

/**
 * `ferry bench qemu`: Ferry's pre-copy against QEMU's own migration (one stream, and multifd),
 * on the same guest, workload, machine and downtime limit, in one run.
 *
 * <p>Ferry: two agents with the qemu driver (a local cluster), the test guest created on host-1,
 * moved to host-2 without --verify. QEMU: two QEMU processes started with the very command line
 * the driver gives a guest and its destination ({@link QemuDriver#command}), the destination
 * with {@code -incoming defer}, then {@code migrate-incoming tcp:127.0.0.1:PORT} (direct TCP, no
 * tunnel), capability {@code events} (and {@code multifd}), max-bandwidth raised so QEMU is not
 * throttled, the same downtime limit; the destination is resumed with {@code cont} as soon as it
 * reports the migration completed, as a management layer would.
 *
 * <p>Every run: start the guest, wait for its first heartbeat, fill the ballast (warm host
 * memory), let the guest run until the settle time is over, measure its CPU and write rate for
 * the last two seconds (the baseline), free the ballast, migrate while sampling CPU, then watch
 * the guest on the destination for stale pages. Modes are run in rotating order so drift on a
 * shared machine spreads over all of them.
 */
public final class QemuBench {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Duration BASELINE = Duration.ofSeconds(2);
    private static final Duration START_TIMEOUT = Duration.ofSeconds(60);
    private static final Duration QMP = Duration.ofSeconds(10);
    private static final long POLL_MS = 100;

    /**
     * @param channels Ferry's streams and QEMU's multifd channels
     * @param maxBandwidth QEMU's max-bandwidth (bytes/s); Ferry runs unlimited
     * @param settle how long the guest runs before it is migrated (from its first heartbeat)
     * @param observe how long the guest is watched on the destination for stale pages
     * @param qemuTimeout how long QEMU may iterate before it is cancelled (it never gives up by itself)
     * @param autoConverge add a multifd run with auto-converge for the non-converging workload
     * @param warm warm host memory before each migration (see {@link Ballast})
     * @param qemuHook start the QEMU-native guests with Ferry's dirty-tracking hook preloaded, as
     *     the driver starts every guest (false: plain QEMU)
     * @param ferryWarmup unmeasured migrations between the fresh agents before the first measured
     *     one: agents are long-lived daemons, and a first migration in a new JVM runs interpreted
     *     and compiling (it took 4.5 s and 4.4 CPU seconds for a 256 MiB guest that warm agents
     *     moves in well under a second)
     * @param nonconvergingCap bytes/s both Ferry and QEMU may send for the non-converging workload
     *     (0: uncapped, QEMU at {@code maxBandwidth}), so that the guest outruns the migration by
     *     construction; on these 2-core machines an uncapped migration starves the TCG guest of
     *     CPU until it converges after all
     */
    public record Settings(
            List<Long> sizes,
            List<BenchWorkload> workloads,
            List<Mode> modes,
            int repeat,
            Duration downtime,
            int channels,
            long maxBandwidth,
            Duration settle,
            Duration observe,
            Duration qemuTimeout,
            boolean autoConverge,
            boolean warm,
            boolean qemuHook,
            int ferryWarmup,
            long nonconvergingCap) {
        public Settings {
            sizes = List.copyOf(sizes);
            workloads = List.copyOf(workloads);
            modes = List.copyOf(modes);
            if (repeat < 1) {
                throw new IllegalArgumentException("--repeat must be at least 1");
            }
            if (channels < 1 || channels > 16) {
                throw new IllegalArgumentException("--channels must be between 1 and 16");
            }
            for (long s : sizes) {
                if (s < (64L << 20) || s % (1L << 20) != 0) {
                    throw new IllegalArgumentException("guest sizes must be whole MiB, at least 64M: " + s);
                }
            }
        }
    }

    private final Settings settings;
    private final PrintStream say;
    private Path work;
    private Path ramDir;
    private QemuDriver driver;
    private int seq;
    private String qemuVersion = "?";
    private String accel = "?";

    public QemuBench(Settings settings, PrintStream say) {
        this.settings = settings;
        this.say = say;
    }

    public static Settings parse(
            String sizes,
            String workloads,
            String modes,
            int repeat,
            int downtimeMs,
            int channels,
            String maxBandwidth,
            double settleSeconds,
            double observeSeconds,
            int qemuTimeoutSeconds,
            boolean autoConverge,
            boolean warm,
            boolean qemuHook,
            int ferryWarmup,
            String nonconvergingCap) {
        return new Settings(
                Stream.of(sizes.split(","))
                        .map(String::trim)
                        .filter(s -> !s.isEmpty())
                        .map(Sizes::parseSize)
                        .toList(),
                Stream.of(workloads.split(","))
                        .map(String::trim)
                        .filter(s -> !s.isEmpty())
                        .map(BenchWorkload::parse)
                        .toList(),
                Stream.of(modes.split(","))
                        .map(String::trim)
                        .filter(s -> !s.isEmpty())
                        .map(Mode::parse)
                        .toList(),
                repeat,
                Duration.ofMillis(downtimeMs),
                channels,
                Sizes.parseRate(maxBandwidth),
                Duration.ofMillis((long) (settleSeconds * 1000)),
                Duration.ofMillis((long) (observeSeconds * 1000)),
                Duration.ofSeconds(qemuTimeoutSeconds),
                autoConverge,
                warm,
                qemuHook,
                ferryWarmup,
                Sizes.parseRate(nonconvergingCap));
    }

    public QemuBenchReport run() throws IOException, InterruptedException {
        work = Files.createTempDirectory("fqb-");
        ramDir = Path.of("/dev/shm/ferry-qbench-" + ProcessHandle.current().pid());
        Files.createDirectories(ramDir);
        List<MigrationRun> runs = new ArrayList<>();
        Path clusterDir = work.resolve("cluster");
        ClusterFile cluster = null;
        try {
            try {
                driver = QemuDriver.create(QemuDriver.Settings.defaults(), work.resolve("native"));
            } catch (HypervisorException e) {
                throw new CliException("cannot use QEMU: " + e.getMessage());
            }
            if (settings.modes().contains(Mode.FERRY)) {
                if (!driver.capabilities().dirtyTracking()) {
                    throw new CliException("this kernel cannot track guest writes, so Ferry's pre-copy cannot run: "
                            + driver.capabilities().dirtyTrackingDetail());
                }
                say.println("starting 2 agents (qemu driver) in " + clusterDir);
                // Standalone agents commit locally: the comparison is of the data paths, and QEMU's own
                // migration has no cluster commit either (the ZooKeeper commit is one versioned write).
                cluster = LocalCluster.up(
                        clusterDir, LocalCluster.Options.of(2, "qemu").standalone(), Duration.ofSeconds(60));
                warmUpAgents(cluster);
            }
            for (long size : settings.sizes()) {
                for (BenchWorkload w : settings.workloads()) {
                    List<Mode> modes = modesFor(w);
                    for (int rep = 1; rep <= settings.repeat(); rep++) {
                        for (int i = 0; i < modes.size(); i++) {
                            Mode m = modes.get((i + rep - 1) % modes.size());
                            say.printf(
                                    Locale.ROOT,
                                    "%s %s %s run %d/%d ...%n",
                                    Sizes.format(size),
                                    w.id,
                                    m.id,
                                    rep,
                                    settings.repeat());
                            MigrationRun r = m == Mode.FERRY ? ferry(cluster, size, w, rep) : qemu(m, size, w, rep);
                            runs.add(r);
                            say.println("  " + line(r));
                        }
                    }
                }
            }
        } finally {
            if (cluster != null) {
                try {
                    LocalCluster.down(clusterDir, Duration.ofSeconds(20));
                } catch (RuntimeException e) {
                    say.println("stopping the agents: " + e.getMessage());
                }
            }
            deleteTree(ramDir);
            deleteTree(work);
        }
        return new QemuBenchReport(settings, runs, machine());
    }

    private List<Mode> modesFor(BenchWorkload w) {
        List<Mode> out = new ArrayList<>(settings.modes());
        if (w == BenchWorkload.NONCONVERGING) {
            // The question there is what each does when it cannot converge, not how RAM is backed.
            out.remove(Mode.QEMU_MULTIFD_ANON);
            if (settings.autoConverge() && out.contains(Mode.QEMU_MULTIFD) && !out.contains(Mode.QEMU_MULTIFD_AC)) {
                out.add(Mode.QEMU_MULTIFD_AC);
            }
        }
        return out;
    }

    static String line(MigrationRun r) {
        return String.format(
                Locale.ROOT,
                "%s: total %s ms, downtime %s ms, %s MB on the wire, %d rounds, CPU %s s "
                        + "(agents %s), guest writes/s %s -> %s, stale lines %d%s",
                r.outcome().label,
                QemuBenchReport.num(r.totalMs(), 0),
                QemuBenchReport.num(r.downtimeMs(), 0),
                QemuBenchReport.num(r.wireBytes() / 1e6, 1),
                r.rounds(),
                QemuBenchReport.num(r.migrationCpuSeconds(), 2),
                QemuBenchReport.num(r.agentCpuSeconds(), 2),
                QemuBenchReport.num(r.guestRateBefore(), 0),
                QemuBenchReport.num(r.guestRateDuring(), 0),
                r.staleLines(),
                r.note() == null ? "" : "; " + r.note());
    }

    /** The bandwidth cap of both sides for this workload, 0 for none. */
    long cap(BenchWorkload w) {
        return w == BenchWorkload.NONCONVERGING ? settings.nonconvergingCap() : 0;
    }

    private static String vmName(long size, BenchWorkload w, int rep) {
        return "qb-" + (size >> 20) + "m-" + w.id + "-" + rep;
    }

    // ---------------------------------------------------------------- before the migration

    /** What the guest used and did before the migration, and how the warm-up went. */
    private record Baseline(
            double qemuCpuPerSecond,
            double guestRate,
            double ballastSeconds,
            int sourceStaleLines,
            String loadAverage) {}

    /**
     * From the guest's first heartbeat: fill the ballast, let the guest run until the settle time is
     * over, and measure its QEMU's CPU and its write rate over the last {@link #BASELINE}.
     */
    private Baseline settle(GuestConsole console, long qemuPid, long size, Ballast ballast)
            throws IOException, InterruptedException {
        awaitHeartbeat(console, START_TIMEOUT);
        long heartbeat = console.beats().getFirst().seenNanos();
        double ballastSeconds = settings.warm() ? ballast.fill(2 * size + (512L << 20)) : 0;
        long filled = System.nanoTime();
        long baselineStart =
                Math.max(System.nanoTime(), heartbeat + settings.settle().toNanos() - BASELINE.toNanos());
        watch(console, baselineStart);
        OptionalLong c0 = ProcStat.cpuTicks(qemuPid);
        long n0 = System.nanoTime();
        watch(console, n0 + BASELINE.toNanos());
        OptionalLong c1 = ProcStat.cpuTicks(qemuPid);
        long n1 = System.nanoTime();
        if (c0.isEmpty() || c1.isEmpty()) {
            throw new CliException("the guest's QEMU (pid " + qemuPid + ") ended before the migration");
        }
        double cpu = ProcStat.seconds(c1.getAsLong() - c0.getAsLong()) / ((n1 - n0) / 1e9);
        // The write rate once the ballast is written (filling it takes CPU from the guest), or over the
        // whole settle time when that is too short to tell: a saturated guest prints a heartbeat only
        // every few seconds.
        double rate = console.writeRate(filled, n1);
        if (Double.isNaN(rate)) {
            rate = console.writeRate(heartbeat, n1);
        }
        return new Baseline(cpu, rate, ballastSeconds, console.staleLines(), loadAverage());
    }

    /** The machine's load average (1, 5, 15 min) as /proc/loadavg says: how busy the shared cores were. */
    private static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).trim().split("\\s+");
            return f[0] + " " + f[1] + " " + f[2];
        } catch (IOException | RuntimeException e) {
            return "?";
        }
    }

    private static void awaitHeartbeat(GuestConsole console, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (console.poll().lastHeartbeat() < 0) {
            if (System.nanoTime() > deadline) {
                throw new CliException("the guest printed no heartbeat within " + timeout.toSeconds() + " s");
            }
            Thread.sleep(50);
        }
    }

    /** Reads the console every 100 ms until {@code untilNanos}. */
    private static void watch(GuestConsole console, long untilNanos) throws InterruptedException {
        while (true) {
            console.poll();
            long left = untilNanos - System.nanoTime();
            if (left <= 0) {
                return;
            }
            Thread.sleep(Math.min(100, Math.max(1, left / 1_000_000)));
        }
    }

    /** Reads a console every 100 ms in the background (while a blocking call runs). */
    private static final class ConsoleWatcher implements AutoCloseable {
        private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().daemon().name("console-watch").factory());

        ConsoleWatcher(GuestConsole console) {
            timer.scheduleAtFixedRate(console::poll, 0, 100, TimeUnit.MILLISECONDS);
        }

        @Override
        public void close() {
            timer.shutdownNow();
        }
    }

    // ---------------------------------------------------------------- after the migration

    /** What the guest did on the destination. */
    /**
     * @param alive the guest's heartbeat advanced on the destination (past the source's last, or from one line to the next)
     * @param wentBack its first heartbeat there was not past the source's last: the guest's own
     *     counters (in its kernel data) went back, so writes to them were lost
     */
    private record Arrival(
            int staleLines,
            long staleCounter,
            boolean alive,
            boolean wentBack,
            boolean restarted,
            List<String> examples,
            GuestConsole.Beat firstBeat,
            int beats) {
        static Arrival never() {
            return new Arrival(-1, 0, false, false, false, List.of(), null, 0);
        }
    }

    private Arrival observe(Path destinationConsole, long lastSourceHeartbeat) throws InterruptedException {
        GuestConsole c = new GuestConsole(destinationConsole);
        watch(c, System.nanoTime() + settings.observe().toNanos());
        c.poll();
        List<GuestConsole.Beat> beats = c.beats();
        // A saturated guest prints a heartbeat only every few seconds: one past the source's last is enough.
        boolean alive = !beats.isEmpty()
                && (beats.getLast().hb() > beats.getFirst().hb()
                        || beats.getLast().hb() > lastSourceHeartbeat);
        boolean wentBack = !beats.isEmpty() && beats.getFirst().hb() <= lastSourceHeartbeat;
        return new Arrival(
                c.staleLines(),
                c.maxStaleCounter(),
                alive,
                wentBack,
                c.starts() > 0,
                c.staleExamples(),
                beats.isEmpty() ? null : beats.getFirst(),
                beats.size());
    }

    /**
     * The guest's writes per second while it was being migrated: from its last heartbeat on the
     * source before the start to its first heartbeat after the end (on the destination when it got
     * there), so that a guest printing few heartbeats is still measured; NaN if they are less than a
     * second apart.
     */
    private static double rateDuring(GuestConsole source, long start, long end, Arrival arrival) {
        GuestConsole.Beat before = source.lastBeatAtOrBefore(start);
        GuestConsole.Beat after = arrival.firstBeat() != null ? arrival.firstBeat() : source.firstBeatAfter(end);
        double r = GuestConsole.rate(before, after);
        return Double.isNaN(r) ? source.writeRate(start, end) : r;
    }

    private static void putArrival(Map<String, Object> d, Arrival a) {
        d.put("destinationHeartbeats", a.beats());
        if (a.wentBack()) {
            d.put("heartbeatWentBack", true);
        }
        if (!a.examples().isEmpty()) {
            d.put("staleExamples", a.examples());
        }
    }

    // ---------------------------------------------------------------- Ferry

    private MigrationRun ferry(ClusterFile cluster, long size, BenchWorkload w, int rep) throws InterruptedException {
        ClusterFile.Host src = cluster.hosts().get(0);
        ClusterFile.Host dst = cluster.hosts().get(1);
        String name = vmName(size, w, rep);
        Path srcRam = Path.of(src.ramDir(), name + ".ram");
        Path dstRam = Path.of(dst.ramDir(), name + ".ram");
        Map<String, Object> d = new LinkedHashMap<>();
        try (AgentClient a = LocalCluster.client(cluster, src, Duration.ofSeconds(600));
                AgentClient b = LocalCluster.client(cluster, dst, Duration.ofSeconds(600));
                Ballast ballast = new Ballast(ramDir.resolve("ballast"))) {
            try {
                a.createVm(CreateVmRequest.newBuilder()
                        .setSpec(w.spec(name, size))
                        .setStart(true)
                        .setRequestId(UUID.randomUUID().toString())
                        .build());
                GuestConsole srcConsole = new GuestConsole(Path.of(src.dataDir(), "vms", name, "console.log"));
                long qemuPid = awaitQemu(srcRam, Duration.ofSeconds(30));
                Baseline base = settle(srcConsole, qemuPid, size, ballast);
                CpuSampler cpu = new CpuSampler();
                cpu.track("agent-source", src.pid());
                cpu.track("agent-destination", dst.pid());
                cpu.track("qemu-source", qemuPid);
                cpu.trackWhenItAppears("qemu-destination", () -> findQemu(dstRam));
                var jitSource = ProcStat.jitThreadTicks(src.pid());
                var jitDestination = ProcStat.jitThreadTicks(dst.pid());
                AtomicReference<String> forced = new AtomicReference<>();
                long[] round0 = {-1, -1};
                MigrationOptions.Builder o = MigrationOptions.newBuilder()
                        .setDowntimeMs((int) settings.downtime().toMillis())
                        .setStreams(settings.channels())
                        .setVerify(false)
                        .setMaxBandwidthBytesPerSec(cap(w));
                MigrationEvent done;
                long t0;
                long t1;
                try (ConsoleWatcher watcher = new ConsoleWatcher(srcConsole)) {
                    ballast.release();
                    t0 = System.nanoTime();
                    done = a.migrate(
                            MigrateRequest.newBuilder()
                                    .setVm(name)
                                    .setTargetHost(dst.id())
                                    .setTargetEndpoint(dst.endpoint())
                                    .setOptions(o)
                                    .setRequestId(UUID.randomUUID().toString())
                                    .build(),
                            e -> {
                                if (e.hasRound()
                                        && !e.getRound().getPartial()
                                        && e.getRound().getRound() == 0) {
                                    round0[0] = e.getRound().getElapsedMs();
                                    round0[1] = e.getRound().getRoundMs();
                                }
                                if (e.getMessage().startsWith("forcing the switchover")) {
                                    forced.set(e.getMessage());
                                }
                            });
                    t1 = System.nanoTime();
                }
                Map<String, Double> cpuSeconds = cpu.stop();
                double jit = ProcStat.seconds(ProcStat.jitTicksBetween(jitSource, ProcStat.jitThreadTicks(src.pid()))
                        + ProcStat.jitTicksBetween(jitDestination, ProcStat.jitThreadTicks(dst.pid())));
                srcConsole.poll();
                MigrationSummary s = done.getSummary();
                Outcome outcome = switch (s.getStatus()) {
                    case MIGRATION_PHASE_COMPLETED -> s.getForcedSwitchover() ? Outcome.FORCED : Outcome.COMPLETED;
                    case MIGRATION_PHASE_CANCELLED -> Outcome.NOT_CONVERGED;
                    default -> Outcome.FAILED;
                };
                String note =
                        outcome == Outcome.FORCED ? forced.get() : outcome == Outcome.COMPLETED ? null : s.getError();
                double window = (t1 - t0) / 1e9;
                double downtimeMs = outcome.switchedOver() ? s.getDowntimeMs() : Double.NaN;
                double guestRan = window - (outcome.switchedOver() ? downtimeMs / 1000 : 0);
                double agents = cpuSeconds.get("agent-source") + cpuSeconds.get("agent-destination");
                double qemus = cpuSeconds.get("qemu-source")
                        + cpuSeconds.get("qemu-destination")
                        - base.qemuCpuPerSecond() * guestRan;
                Arrival arrival = outcome.switchedOver()
                        ? observe(Path.of(dst.dataDir(), "vms", name, "console.log"), srcConsole.lastHeartbeat())
                        : Arrival.never();
                d.put("prepareMs", round0[0] >= 0 ? round0[0] - round0[1] : null);
                d.put("round0Ms", round0[1] >= 0 ? round0[1] : null);
                d.put("finalPagesMs", s.getFinalPagesMs());
                d.put("deviceStateMs", s.getDeviceStateMs());
                d.put("commitMs", s.getCommitMs());
                d.put("resumeMs", s.getResumeMs());
                d.put("deviceStateBytes", s.getDeviceStateBytes());
                d.put("pagesSent", s.getPagesSent());
                d.put("streams", settings.channels());
                d.put("maxBandwidth", cap(w));
                d.put("sourceStaleLinesBeforeMigration", base.sourceStaleLines());
                d.put("cpuSeconds", cpuSeconds);
                // Of the agents' CPU, what their JIT compiler threads took (at least: threads that ended are missed).
                d.put("agentJitCpuSeconds", QemuBenchReport.round(jit));
                d.put("guestCpuPerSecondBaseline", QemuBenchReport.round(base.qemuCpuPerSecond()));
                d.put("windowSeconds", QemuBenchReport.round(window));
                d.put("ballastFillSeconds", QemuBenchReport.round(base.ballastSeconds()));
                d.put("loadAverageBefore", base.loadAverage());
                d.put("loadAverageAfter", loadAverage());
                putArrival(d, arrival);
                return new MigrationRun(
                        Mode.FERRY,
                        size,
                        w,
                        rep,
                        outcome,
                        s.getTotalMs(),
                        downtimeMs,
                        s.getBytesTransferred(),
                        s.getRounds(),
                        agents + qemus,
                        agents,
                        qemus,
                        base.guestRate(),
                        rateDuring(srcConsole, t0, t1, arrival),
                        arrival.staleLines(),
                        arrival.staleCounter(),
                        arrival.alive(),
                        arrival.restarted(),
                        note,
                        d);
            } finally {
                for (AgentClient c : List.of(b, a)) {
                    try {
                        c.deleteVm(name);
                    } catch (AgentCallException e) {
                        // not there: it moved, or never arrived
                    }
                }
            }
        } catch (RuntimeException | IOException e) {
            return failed(Mode.FERRY, size, w, rep, e, d);
        }
    }

    /** Moves a busy guest back and forth between the agents, unmeasured, so that their JIT has compiled the paths. */
    private void warmUpAgents(ClusterFile cluster) throws InterruptedException {
        if (settings.ferryWarmup() <= 0) {
            return;
        }
        say.println("warming up the agents: " + settings.ferryWarmup()
                + " unmeasured migrations of a 512 MiB guest (ws256m)");
        String name = "qb-warmup";
        List<ClusterFile.Host> hosts = cluster.hosts();
        try (AgentClient a = LocalCluster.client(cluster, hosts.get(0), Duration.ofSeconds(300));
                AgentClient b = LocalCluster.client(cluster, hosts.get(1), Duration.ofSeconds(300))) {
            try {
                a.createVm(CreateVmRequest.newBuilder()
                        .setSpec(BenchWorkload.WS256M.spec(name, 512L << 20))
                        .setStart(true)
                        .setRequestId(UUID.randomUUID().toString())
                        .build());
                awaitHeartbeat(
                        new GuestConsole(Path.of(hosts.get(0).dataDir(), "vms", name, "console.log")), START_TIMEOUT);
                Thread.sleep(3000);
                for (int i = 0; i < settings.ferryWarmup(); i++) {
                    AgentClient from = i % 2 == 0 ? a : b;
                    ClusterFile.Host to = hosts.get((i + 1) % 2);
                    MigrationSummary s = from.migrate(
                                    MigrateRequest.newBuilder()
                                            .setVm(name)
                                            .setTargetHost(to.id())
                                            .setTargetEndpoint(to.endpoint())
                                            .setOptions(MigrationOptions.newBuilder()
                                                    .setDowntimeMs((int)
                                                            settings.downtime().toMillis())
                                                    .setStreams(settings.channels()))
                                            .setRequestId(UUID.randomUUID().toString())
                                            .build(),
                                    e -> {})
                            .getSummary();
                    say.printf(
                            Locale.ROOT,
                            "  warm-up %d: %s, %d ms total, %d ms downtime%n",
                            i + 1,
                            s.getStatus().name().replace("MIGRATION_PHASE_", "").toLowerCase(Locale.ROOT),
                            s.getTotalMs(),
                            s.getDowntimeMs());
                    Thread.sleep(500);
                }
            } finally {
                for (AgentClient c : List.of(a, b)) {
                    try {
                        c.deleteVm(name);
                    } catch (AgentCallException e) {
                        // on the other host
                    }
                }
            }
        }
    }

    private static long awaitQemu(Path ramFile, Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            OptionalLong p = findQemu(ramFile);
            if (p.isPresent()) {
                return p.getAsLong();
            }
            if (System.nanoTime() > deadline) {
                throw new CliException("no QEMU process uses " + ramFile);
            }
            Thread.sleep(20);
        }
    }

    /** The QEMU process whose command line names {@code ramFile}. */
    static OptionalLong findQemu(Path ramFile) {
        String want = ramFile.toString();
        return ProcessHandle.allProcesses()
                .filter(p -> {
                    String cmd = cmdline(p.pid());
                    return cmd.contains("qemu-system") && cmd.contains(want);
                })
                .mapToLong(ProcessHandle::pid)
                .findFirst();
    }

    private static String cmdline(long pid) {
        try {
            return new String(
                    Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline")), StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "";
        }
    }

    // ---------------------------------------------------------------- QEMU

    private QemuCommand command(Mode mode, VmSpec spec, VmPaths paths, boolean incoming) throws IOException {
        QemuCommand c = driver.command(spec, paths, incoming);
        if (mode == Mode.QEMU_MULTIFD_ANON) {
            return c.toBuilder()
                    .binary(anonymousRamWrapper(c.binary()))
                    .hookLibrary(null)
                    .build();
        }
        return settings.qemuHook() ? c : c.toBuilder().hookLibrary(null).build();
    }

    /**
     * A wrapper that runs QEMU with the driver's command line but its own anonymous guest RAM: it
     * drops the {@code memory-backend-file} object and the machine's {@code memory-backend}, and
     * execs QEMU (same pid). QemuCommand always renders the shared RAM file, which is what Ferry
     * needs; only the reference mode wants QEMU's default.
     */
    private Path anonymousRamWrapper(Path qemu) throws IOException {
        Path w = work.resolve("qemu-anonymous-ram");
        if (!Files.exists(w)) {
            String script = """
          #!/bin/bash
          # Written by `ferry bench qemu` for its reference runs: the QEMU driver's command line,
          # but guest RAM as QEMU's own anonymous memory instead of the shared RAM file.
          args=()
          while [ $# -gt 0 ]; do
            case "$1" in
              -object) if [[ "$2" == memory-backend-file,* ]]; then shift 2; continue; fi ;;
              -machine) args+=("-machine" "${2%%,memory-backend=*}"); shift 2; continue ;;
            esac
            args+=("$1"); shift
          done
          exec QEMU "${args[@]}"
          """.replace("QEMU", qemu.toString());
            Files.writeString(w, script);
            w.toFile().setExecutable(true, true);
        }
        return w;
    }

    private MigrationRun qemu(Mode mode, long size, BenchWorkload w, int rep) {
        String name = vmName(size, w, rep);
        VmSpec spec = w.spec(name, size);
        Path dir = work.resolve("q" + (++seq));
        VmPaths sp = new VmPaths(dir.resolve("src"), ramDir.resolve(name + "-src.ram"));
        VmPaths dp = new VmPaths(dir.resolve("dst"), ramDir.resolve(name + "-dst.ram"));
        Map<String, Object> d = new LinkedHashMap<>();
        QemuProcess src = null;
        QemuProcess dst = null;
        try (Ballast ballast = new Ballast(ramDir.resolve("ballast"))) {
            QemuCommand sc = command(mode, spec, sp, false);
            QemuCommand dc = command(mode, spec, dp, true);
            if (mode != Mode.QEMU_MULTIFD_ANON) {
                RamFile.create(sp.ramFile(), size).close();
                RamFile.create(dp.ramFile(), size).close();
            }
            src = QemuProcess.start(sc, START_TIMEOUT);
            qemuVersion = String.valueOf(src.version());
            accel = String.valueOf(src.accel().accel());
            GuestConsole srcConsole = new GuestConsole(sc.consoleLog());
            Baseline base = settle(srcConsole, src.pid(), size, ballast);
            QmpClient sq = src.qmp();
            sq.execute("migrate-set-capabilities", capabilities(mode, true), QMP);
            sq.execute("migrate-set-parameters", parameters(mode, true, w), QMP);
            QmpClient.EventWaiter stopped = sq.expect("STOP", null);
            AtomicReference<Instant> sourceCompleted = new AtomicReference<>();
            sq.addEventListener(e -> {
                if (e.name().equals("MIGRATION")
                        && e.data().path("status").asText().equals("completed")) {
                    sourceCompleted.set(e.timestamp());
                }
            });
            CpuSampler cpu = new CpuSampler();
            cpu.track("qemu-source", src.pid());
            ballast.release();
            Instant t0 = Instant.now();
            long n0 = System.nanoTime();
            dst = QemuProcess.start(dc, START_TIMEOUT);
            long dstPid = dst.pid();
            cpu.trackWhenItAppears("qemu-destination", () -> OptionalLong.of(dstPid));
            QmpClient dq = dst.qmp();
            dq.execute("migrate-set-capabilities", capabilities(mode, false), QMP);
            dq.execute("migrate-set-parameters", parameters(mode, false, w), QMP);
            QmpClient.EventWaiter resumed = dq.expect("RESUME", null);
            AtomicReference<String> contError = new AtomicReference<>();
            AtomicReference<Instant> destinationCompleted = new AtomicReference<>();
            dq.addEventListener(e -> {
                if (e.name().equals("MIGRATION")
                        && e.data().path("status").asText().equals("completed")) {
                    destinationCompleted.set(e.timestamp());
                    try {
                        dq.execute("cont", QMP);
                    } catch (QmpException ex) {
                        contError.set(ex.getMessage());
                    }
                }
            });
            String uri = "tcp:127.0.0.1:" + freePort();
            dq.execute("migrate-incoming", JSON.createObjectNode().put("uri", uri), QMP);
            double destStartMs = (System.nanoTime() - n0) / 1e6;
            sq.execute("migrate", JSON.createObjectNode().put("uri", uri), QMP);
            long deadline = n0 + settings.qemuTimeout().toNanos();
            QueryMigrate q;
            QueryMigrate lastActive = null;
            int maxThrottle = 0;
            boolean cancelled = false;
            while (true) {
                q = QueryMigrate.parse(sq.execute("query-migrate", QMP));
                srcConsole.poll();
                if (q.status().equals("active")) {
                    lastActive = q;
                    maxThrottle = Math.max(maxThrottle, q.cpuThrottlePercent());
                }
                if (q.ended()) {
                    // QEMU 7.2 sets "completed" before it computes total-time and downtime (its
                    // migration thread fills them in a moment later): a query in between reads 0.
                    for (int i = 0; i < 40 && q.completed() && q.totalTimeMs() == 0; i++) {
                        Thread.sleep(25);
                        q = QueryMigrate.parse(sq.execute("query-migrate", QMP));
                    }
                    break;
                }
                if (!cancelled && System.nanoTime() > deadline) {
                    sq.execute("migrate_cancel", QMP);
                    cancelled = true;
                    deadline = System.nanoTime() + QMP.toNanos();
                } else if (cancelled && System.nanoTime() > deadline) {
                    throw new CliException(
                            "QEMU did not end its migration within " + QMP.toSeconds() + " s of migrate_cancel");
                }
                Thread.sleep(POLL_MS);
            }
            long nEnd = System.nanoTime();
            Outcome outcome;
            double totalMs;
            double downtimeMs = Double.NaN;
            String note = null;
            if (q.completed()) {
                QmpEvent r = resumed.await(Duration.ofSeconds(30));
                QmpEvent s = stopped.await(QMP);
                totalMs = Duration.between(t0, r.timestamp()).toNanos() / 1e6;
                downtimeMs = Duration.between(s.timestamp(), r.timestamp()).toNanos() / 1e6;
                outcome = Outcome.COMPLETED;
                // Where the pause went: source sending (QEMU's own downtime figure is about this part),
                // destination loading the rest, and the cont a management layer sends.
                if (sourceCompleted.get() != null && destinationCompleted.get() != null) {
                    d.put("stopToSourceCompletedMs", millis(s.timestamp(), sourceCompleted.get()));
                    d.put("stopToDestinationCompletedMs", millis(s.timestamp(), destinationCompleted.get()));
                    d.put("destinationCompletedToResumeMs", millis(destinationCompleted.get(), r.timestamp()));
                }
            } else if (cancelled && q.status().equals("cancelled")) {
                outcome = Outcome.NOT_CONVERGED;
                totalMs = (nEnd - n0) / 1e6;
                note = String.format(
                        Locale.ROOT,
                        "still iterating after %d s (dirty-sync-count %d, %s MB left, expected "
                                + "downtime %d ms against the %d ms limit%s); migrate_cancel, the guest kept running on the source",
                        settings.qemuTimeout().toSeconds(),
                        lastActive == null ? 0 : lastActive.dirtySyncCount(),
                        lastActive == null ? "?" : QemuBenchReport.num(lastActive.ramRemaining() / 1e6, 0),
                        lastActive == null ? 0 : lastActive.expectedDowntimeMs(),
                        settings.downtime().toMillis(),
                        maxThrottle > 0 ? ", vCPU throttled up to " + maxThrottle + " %" : "");
            } else {
                outcome = Outcome.FAILED;
                totalMs = (nEnd - n0) / 1e6;
                note = "QEMU's migration " + q.status() + (q.error() == null ? "" : ": " + q.error());
            }
            if (contError.get() != null) {
                note = (note == null ? "" : note + "; ") + "cont on the destination: " + contError.get();
            }
            Map<String, Double> cpuSeconds = cpu.stop();
            double window = (System.nanoTime() - n0) / 1e9;
            double guestRan = window - (outcome.switchedOver() ? downtimeMs / 1000 : 0);
            double qemus = cpuSeconds.get("qemu-source")
                    + cpuSeconds.get("qemu-destination")
                    - base.qemuCpuPerSecond() * guestRan;
            QueryMigrate figures = q.completed() || lastActive == null ? q : lastActive;
            if (maxThrottle > 0 && note == null) {
                note = "auto-converge throttled the guest's vCPU up to " + maxThrottle + " %";
            }
            Arrival arrival =
                    outcome.switchedOver() ? observe(dc.consoleLog(), srcConsole.lastHeartbeat()) : Arrival.never();
            d.put("qemuTotalTimeMs", q.completed() ? q.totalTimeMs() : null);
            d.put("qemuDowntimeMs", q.completed() ? q.downtimeMs() : null);
            d.put("qemuSetupTimeMs", q.setupTimeMs());
            d.put("destinationStartMs", QemuBenchReport.round(destStartMs));
            d.put("mbps", figures.mbps());
            d.put("ramTotal", figures.ramTotal());
            d.put("duplicatePages", figures.duplicatePages());
            d.put("normalPages", figures.normalPages());
            d.put("multifdBytes", figures.multifdBytes());
            d.put("dirtyPagesRate", figures.dirtyPagesRate());
            d.put("maxCpuThrottlePercent", maxThrottle);
            d.put("capabilities", capabilities(mode, true).get("capabilities"));
            d.put("parameters", parameters(mode, true, w));
            d.put("sourceStaleLinesBeforeMigration", base.sourceStaleLines());
            d.put("cpuSeconds", cpuSeconds);
            d.put("guestCpuPerSecondBaseline", QemuBenchReport.round(base.qemuCpuPerSecond()));
            d.put("windowSeconds", QemuBenchReport.round(window));
            d.put("ballastFillSeconds", QemuBenchReport.round(base.ballastSeconds()));
            d.put("loadAverageBefore", base.loadAverage());
            d.put("loadAverageAfter", loadAverage());
            d.put("qemuHook", mode != Mode.QEMU_MULTIFD_ANON && settings.qemuHook());
            d.put(
                    "guestRam",
                    mode == Mode.QEMU_MULTIFD_ANON ? "QEMU's anonymous memory" : "the driver's shared RAM file");
            putArrival(d, arrival);
            return new MigrationRun(
                    mode,
                    size,
                    w,
                    rep,
                    outcome,
                    totalMs,
                    downtimeMs,
                    figures.wireBytes(),
                    figures.dirtySyncCount(),
                    qemus,
                    Double.NaN,
                    qemus,
                    base.guestRate(),
                    rateDuring(srcConsole, n0, nEnd, arrival),
                    arrival.staleLines(),
                    arrival.staleCounter(),
                    arrival.alive(),
                    arrival.restarted(),
                    note,
                    d);
        } catch (HypervisorException | IOException | RuntimeException e) {
            return failed(mode, size, w, rep, e, d);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CliException("interrupted");
        } finally {
            if (dst != null) {
                dst.close();
            }
            if (src != null) {
                src.close();
            }
            deleteTree(sp.ramFile());
            deleteTree(dp.ramFile());
            deleteTree(dir);
        }
    }

    /** {@code events} always; {@code multifd} for the multifd modes; {@code auto-converge} on the source of that mode. */
    static ObjectNode capabilities(Mode mode, boolean source) {
        ObjectNode args = JSON.createObjectNode();
        ArrayNode caps = args.putArray("capabilities");
        caps.addObject().put("capability", "events").put("state", true);
        caps.addObject().put("capability", "multifd").put("state", mode.multifd());
        if (source) {
            caps.addObject().put("capability", "auto-converge").put("state", mode == Mode.QEMU_MULTIFD_AC);
        }
        return args;
    }

    /** Source: max-bandwidth and downtime-limit (and channels); destination: the channels only. */
    ObjectNode parameters(Mode mode, boolean source, BenchWorkload w) {
        ObjectNode p = JSON.createObjectNode();
        if (source) {
            p.put("max-bandwidth", cap(w) > 0 ? cap(w) : settings.maxBandwidth());
            p.put("downtime-limit", settings.downtime().toMillis());
        }
        if (mode.multifd()) {
            p.put("multifd-channels", settings.channels());
        }
        return p;
    }

    private static Double millis(Instant from, Instant to) {
        return QemuBenchReport.round(Duration.between(from, to).toNanos() / 1e6);
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    private static MigrationRun failed(
            Mode mode, long size, BenchWorkload w, int rep, Exception e, Map<String, Object> d) {
        return new MigrationRun(
                mode,
                size,
                w,
                rep,
                Outcome.FAILED,
                Double.NaN,
                Double.NaN,
                0,
                0,
                Double.NaN,
                Double.NaN,
                Double.NaN,
                Double.NaN,
                Double.NaN,
                -1,
                0,
                false,
                false,
                "error: " + e.getMessage(),
                d);
    }

    // ---------------------------------------------------------------- the machine

    private String machine() {
        StringBuilder b = new StringBuilder();
        b.append(Runtime.getRuntime().availableProcessors()).append(" cores");
        try {
            Files.readAllLines(Path.of("/proc/cpuinfo")).stream()
                    .filter(l -> l.startsWith("model name"))
                    .findFirst()
                    .ifPresent(l -> b.append(" (")
                            .append(l.substring(l.indexOf(':') + 1).trim())
                            .append(")"));
            Files.readAllLines(Path.of("/proc/meminfo")).stream()
                    .filter(l -> l.startsWith("MemTotal"))
                    .findFirst()
                    .ifPresent(l -> b.append(", ")
                            .append(Sizes.format(Long.parseLong(l.replaceAll("\\D", "")) * 1024))
                            .append(" RAM"));
            b.append(", Linux ")
                    .append(Files.readString(Path.of("/proc/sys/kernel/osrelease"))
                            .trim());
        } catch (IOException | RuntimeException e) {
            // best effort
        }
        b.append(", QEMU ").append(qemuVersion).append(" (").append(accel).append(")");
        b.append(", Java ").append(Runtime.version());
        return b.toString();
    }

    private static void deleteTree(Path p) {
        if (p == null || !Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        } catch (IOException e) {
            // best effort
        }
    }
}
