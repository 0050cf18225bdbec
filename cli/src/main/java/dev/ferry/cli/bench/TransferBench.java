package dev.ferry.cli.bench;

import dev.ferry.agent.client.AgentClient;
import dev.ferry.cli.CliException;
import dev.ferry.cli.Sizes;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import java.io.File;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * `ferry bench`: Ferry's migration throughput between two agent processes over loopback gRPC
 * with mutual TLS (as every cluster runs), against the same migration between two agents started
 * with {@code --insecure} (plaintext gRPC: what TLS costs) and one raw TCP stream moving the same
 * memory between two processes, in the same run, cases taking turns; then
 * the agents' own memory (RssAnon: heap, direct buffers, native; guest RAM is shared memory and
 * reported apart) while a large guest moves.
 */
public final class TransferBench {
    /** {@code linkRate}: bytes per second both transports are held to on the wire (0: unpaced). */
    public record Settings(
            long size, List<Pattern> patterns, List<Integer> streams, int repeat, long memorySize, long linkRate) {}

    /**
     * One measured case: MB/s of each repetition, and the CPU time both ends spent per GiB moved
     * (user + system, whole processes). CPU per GiB does not move with the machine's other load the
     * way MB/s does, so it is the figure to compare changes of the data path by.
     */
    public record Case(
            String pattern,
            String transport,
            int streams,
            List<Double> mbPerSec,
            double wireRatio,
            List<Double> senderCpuPerGiB,
            List<Double> receiverCpuPerGiB) {
        double median() {
            return medianOf(mbPerSec);
        }
    }

    static double medianOf(List<Double> values) {
        if (values.isEmpty()) {
            return 0;
        }
        List<Double> s = new ArrayList<>(values);
        Collections.sort(s);
        return s.get(s.size() / 2);
    }

    /** Peak memory of the agents while one guest moved. */
    public record MemoryRun(
            long guestBytes,
            int streams,
            long senderAnon,
            long receiverAnon,
            long senderRss,
            long receiverRss,
            double mbPerSec) {}

    public record Report(Settings settings, List<Case> cases, List<MemoryRun> memory, String machine) {
        public String table() {
            StringBuilder b = new StringBuilder();
            b.append(String.format(
                    Locale.ROOT,
                    "guest %s per run, median of %d; MB/s = guest bytes moved per second (10^6); TLS: %s%s%n",
                    Sizes.format(settings.size()),
                    settings.repeat(),
                    dev.ferry.rpc.Transport.tlsImplementation(),
                    settings.linkRate() > 0
                            ? "; link emulated at " + Sizes.format(settings.linkRate()) + "/s (wire bytes)"
                            : ""));
            b.append(String.format(
                    Locale.ROOT,
                    "%-13s %-16s %7s %10s %9s %10s %13s %13s%n",
                    "memory",
                    "transport",
                    "streams",
                    "MB/s",
                    "vs raw",
                    "wire/RAM",
                    "send CPU s/G",
                    "recv CPU s/G"));
            for (Case c : cases) {
                double raw = rawMedian(c.pattern());
                b.append(String.format(
                        Locale.ROOT,
                        "%-13s %-16s %7d %10.0f %8.0f%% %9.0f%% %13.2f %13.2f%n",
                        c.pattern(),
                        c.transport(),
                        c.streams(),
                        c.median(),
                        raw > 0 ? 100 * c.median() / raw : 0,
                        100 * c.wireRatio(),
                        medianOf(c.senderCpuPerGiB()),
                        medianOf(c.receiverCpuPerGiB())));
            }
            // What mutual TLS costs: the same migration between agents with and without it, in turns.
            for (Case tls : cases) {
                if (!tls.transport().equals("ferry-grpc")) {
                    continue;
                }
                for (Case plain : cases) {
                    if (plain.transport().equals("ferry-plaintext")
                            && plain.pattern().equals(tls.pattern())
                            && plain.streams() == tls.streams()
                            && plain.median() > 0) {
                        double cpuTls = medianOf(tls.senderCpuPerGiB()) + medianOf(tls.receiverCpuPerGiB());
                        double cpuPlain = medianOf(plain.senderCpuPerGiB()) + medianOf(plain.receiverCpuPerGiB());
                        b.append(String.format(
                                Locale.ROOT,
                                "%nTLS cost, %s, %d stream(s): %.0f vs %.0f MB/s plaintext (%+.0f%%), "
                                        + "CPU per GiB both ends %.2f vs %.2f s (%+.0f%%); runs TLS %s, plaintext %s",
                                tls.pattern(),
                                tls.streams(),
                                tls.median(),
                                plain.median(),
                                100 * (tls.median() / plain.median() - 1),
                                cpuTls,
                                cpuPlain,
                                cpuPlain > 0 ? 100 * (cpuTls / cpuPlain - 1) : 0,
                                tls.mbPerSec().stream().map(Math::round).toList(),
                                plain.mbPerSec().stream().map(Math::round).toList()));
                    }
                }
            }
            if (cases.stream().anyMatch(c -> c.transport().equals("ferry-plaintext"))) {
                b.append(String.format("%n"));
            }
            for (MemoryRun m : memory) {
                b.append(String.format(
                        Locale.ROOT,
                        "%nmemory while moving a %s guest (%d streams, %.0f MB/s): sender RssAnon peak %s, receiver %s "
                                + "(VmRSS incl. guest RAM %s / %s)%n",
                        Sizes.format(m.guestBytes()),
                        m.streams(),
                        m.mbPerSec(),
                        Sizes.format(m.senderAnon()),
                        Sizes.format(m.receiverAnon()),
                        Sizes.format(m.senderRss()),
                        Sizes.format(m.receiverRss())));
            }
            return b.toString();
        }

        double rawMedian(String pattern) {
            for (Case c : cases) {
                if (c.pattern().equals(pattern) && c.transport().equals("raw-tcp")) {
                    return c.median();
                }
            }
            return 0;
        }

        public Map<String, Object> toJson() {
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("guestBytes", settings.size());
            out.put("repeat", settings.repeat());
            out.put("linkRateBytesPerSec", settings.linkRate());
            out.put("machine", machine);
            out.put("tls", dev.ferry.rpc.Transport.tlsImplementation());
            List<Map<String, Object>> rows = new ArrayList<>();
            for (Case c : cases) {
                Map<String, Object> r = new LinkedHashMap<>();
                r.put("pattern", c.pattern());
                r.put("transport", c.transport());
                r.put("streams", c.streams());
                r.put("mbPerSecMedian", Math.round(c.median()));
                r.put("mbPerSecRuns", c.mbPerSec().stream().map(Math::round).toList());
                r.put("vsRawTcp", Math.round(1000 * c.median() / Math.max(1, rawMedian(c.pattern()))) / 1000.0);
                r.put("wireRatio", Math.round(1000 * c.wireRatio()) / 1000.0);
                r.put("senderCpuSecPerGiB", Math.round(100 * medianOf(c.senderCpuPerGiB())) / 100.0);
                r.put("receiverCpuSecPerGiB", Math.round(100 * medianOf(c.receiverCpuPerGiB())) / 100.0);
                rows.add(r);
            }
            out.put("throughput", rows);
            out.put("memory", memory);
            return out;
        }
    }

    /**
     * Memory freed just before a run, so that the receiver of every case writes into memory the
     * host backs. These machines return freed memory to their host at once (virtio-balloon free
     * page reporting, min_free_ms=0), and first use of returned memory costs a host fault per page:
     * without this, whichever case allocates after a pause pays 1-2 s per GiB more, and which one
     * that is depends on the order of the cases, not on the transport.
     */
    private static final long WARM_SLACK = 256L << 20;

    private Path scratchDir;
    /** The benchmark's two agents (their clients speak the cluster's TLS). */
    private ClusterFile cluster;
    /** Two more agents started with --insecure: plaintext gRPC, the baseline TLS is measured against. */
    private ClusterFile plaintext;

    private final Settings settings;
    private final PrintStream say;

    public TransferBench(Settings settings, PrintStream say) {
        this.settings = settings;
        this.say = say;
    }

    public Report run() throws IOException, InterruptedException {
        Path dir = Files.createTempDirectory("ferry-bench-");
        Path ramDir = Path.of("/dev/shm/ferry-bench-" + ProcessHandle.current().pid());
        Files.createDirectories(ramDir);
        scratchDir = ramDir;
        warmHostMemory(ramDir, 2 * Math.max(settings.size(), settings.memorySize()) + (1L << 30));
        say.println("starting 2 agents and a raw TCP receiver in " + dir);
        cluster = LocalCluster.up(dir, LocalCluster.Options.of(2, "sim").standalone(), Duration.ofSeconds(60));
        say.println("starting 2 agents with --insecure (plaintext gRPC) for the cost of TLS");
        plaintext = LocalCluster.up(
                dir.resolve("plaintext"),
                LocalCluster.Options.of(2, "sim").standalone().insecure(true),
                Duration.ofSeconds(60));
        Process sink = startSink(ramDir.resolve("sink"), dir.resolve("sink.endpoint"));
        List<Case> cases = new ArrayList<>();
        List<MemoryRun> memory = new ArrayList<>();
        try {
            SinkEndpoints sinkAt = endpoint(dir.resolve("sink.endpoint"), sink);
            ClusterFile.Host source = cluster.hosts().get(0);
            ClusterFile.Host target = cluster.hosts().get(1);
            ClusterFile.Host plainSource = plaintext.hosts().get(0);
            ClusterFile.Host plainTarget = plaintext.hosts().get(1);
            // Agents are long-lived daemons: the first migration of a fresh JVM runs interpreted while
            // it compiles, at a third of the speed of every later one, so it is run and not measured.
            say.println("  warm-up migration (not measured)");
            for (ClusterFile c : List.of(cluster, plaintext)) {
                migrate(
                        c,
                        c.hosts().get(0),
                        c.hosts().get(1),
                        "bench-warmup",
                        Pattern.PATTERN_RANDOM,
                        Math.min(settings.size(), 256L << 20),
                        Collections.max(settings.streams()),
                        null,
                        null);
            }
            // Cases of one pattern take turns (raw, 1 stream, N streams, raw, ...) so that a change in
            // the machine's other load moves all of them, not only whichever ran in that minute.
            for (Pattern p : settings.patterns()) {
                String name = p.name().replace("PATTERN_", "").toLowerCase(Locale.ROOT);
                Runs raw = new Runs();
                Runs checkedTcp = new Runs();
                Runs grpc = new Runs();
                List<Runs> ferry =
                        settings.streams().stream().map(n -> new Runs()).toList();
                List<Runs> insecure =
                        settings.streams().stream().map(n -> new Runs()).toList();
                try (VmInstance rawSource = new SimDriver()
                        .create(
                                spec("raw-src", p, settings.size()),
                                new VmPaths(ramDir.resolve("raw-src"), ramDir.resolve("raw-src.ram")))) {
                    for (int i = 0; i < settings.repeat(); i++) {
                        Measured m = raw(rawSource, sinkAt.raw(), sink.pid(), false);
                        raw.add(m);
                        say.printf(Locale.ROOT, "  %-12s raw tcp: %s%n", name, m);
                        if (settings.linkRate() == 0) {
                            m = raw(rawSource, sinkAt.raw(), sink.pid(), true);
                            checkedTcp.add(m);
                            say.printf(Locale.ROOT, "  %-12s tcp with checks: %s%n", name, m);
                            m = grpcBytes(rawSource, sinkAt.grpc(), sink.pid());
                            grpc.add(m);
                            say.printf(Locale.ROOT, "  %-12s grpc bytes: %s%n", name, m);
                        }
                        for (int k = 0; k < settings.streams().size(); k++) {
                            int streams = settings.streams().get(k);
                            m = migrate(
                                    cluster, source, target, "bench-" + name, p, settings.size(), streams, null, null);
                            ferry.get(k).add(m);
                            say.printf(Locale.ROOT, "  %-12s ferry %d stream(s), TLS: %s%n", name, streams, m);
                            m = migrate(
                                    plaintext,
                                    plainSource,
                                    plainTarget,
                                    "bench-" + name,
                                    p,
                                    settings.size(),
                                    streams,
                                    null,
                                    null);
                            insecure.get(k).add(m);
                            say.printf(Locale.ROOT, "  %-12s ferry %d stream(s), plaintext: %s%n", name, streams, m);
                        }
                    }
                } catch (dev.ferry.hypervisor.HypervisorException e) {
                    throw new CliException("cannot create the raw source memory: " + e.getMessage());
                }
                cases.add(raw.toCase(name, "raw-tcp", 1));
                if (!grpc.mbPerSec.isEmpty()) {
                    cases.add(checkedTcp.toCase(name, "tcp-checks", 1));
                    cases.add(grpc.toCase(name, "grpc-bytes", 1));
                }
                for (int k = 0; k < settings.streams().size(); k++) {
                    cases.add(ferry.get(k)
                            .toCase(name, "ferry-grpc", settings.streams().get(k)));
                    cases.add(insecure.get(k)
                            .toCase(name, "ferry-plaintext", settings.streams().get(k)));
                }
            }
            if (settings.memorySize() > 0) {
                int streams = Collections.max(settings.streams());
                for (long guest : List.of(settings.size(), settings.memorySize())) {
                    try (ProcessMemory s = new ProcessMemory(source.pid());
                            ProcessMemory r = new ProcessMemory(target.pid())) {
                        Measured m = migrate(
                                cluster, source, target, "bench-mem", Pattern.PATTERN_RANDOM, guest, streams, s, r);
                        memory.add(new MemoryRun(
                                guest,
                                streams,
                                s.peakAnonBytes(),
                                r.peakAnonBytes(),
                                s.peakRssBytes(),
                                r.peakRssBytes(),
                                m.mbPerSec()));
                        say.printf(
                                Locale.ROOT,
                                "  memory run %s: sender RssAnon peak %s, receiver %s%n",
                                Sizes.format(guest),
                                Sizes.format(s.peakAnonBytes()),
                                Sizes.format(r.peakAnonBytes()));
                    }
                }
            }
        } finally {
            sink.destroyForcibly();
            LocalCluster.down(dir.resolve("plaintext"), Duration.ofSeconds(20));
            LocalCluster.down(dir, Duration.ofSeconds(20));
            deleteTree(ramDir);
            deleteTree(dir);
        }
        String machine = Runtime.getRuntime().availableProcessors() + " cores, Java " + Runtime.version();
        return new Report(settings, cases, memory, machine);
    }

    /**
     * Touches and frees memory first: these machines are VMs whose host backs guest memory on
     * first use (about 2 s per GiB), which would otherwise be charged to whichever case ran first.
     */
    private void warmHostMemory(Path ramDir, long bytes) throws IOException {
        say.println("warming " + Sizes.format(bytes) + " of host memory (first use of memory is slow on these VMs)");
        touchAndFree(ramDir, bytes);
    }

    static void touchAndFree(Path ramDir, long bytes) throws IOException {
        Path file = ramDir.resolve("warm");
        ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            for (long at = 0; at < bytes; at += buf.capacity()) {
                buf.clear();
                ch.write(buf, at);
            }
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /** One transfer of {@code src}'s memory as plain gRPC messages (the gRPC floor, see {@link GrpcBytes}). */
    private Measured grpcBytes(VmInstance src, dev.ferry.rpc.Endpoint.Tcp sink, long sinkPid) throws IOException {
        touchAndFree(scratchDir, settings.size() + WARM_SLACK);
        long self = ProcessHandle.current().pid();
        long s0 = ProcStat.cpuTicks(self).orElse(0);
        long r0 = ProcStat.cpuTicks(sinkPid).orElse(0);
        long t = System.nanoTime();
        GrpcBytes.send(sink, src.memory());
        double seconds = (System.nanoTime() - t) / 1e9;
        return measured(
                settings.size(),
                seconds,
                1.0,
                ProcStat.cpuTicks(self).orElse(0) - s0,
                ProcStat.cpuTicks(sinkPid).orElse(0) - r0);
    }

    /** One raw TCP transfer of {@code src}'s memory; the sender is this process, so its CPU is this process's. */
    private Measured raw(VmInstance src, InetSocketAddress sink, long sinkPid, boolean checked) throws IOException {
        touchAndFree(scratchDir, settings.size() + WARM_SLACK);
        long self = ProcessHandle.current().pid();
        long s0 = ProcStat.cpuTicks(self).orElse(0);
        long r0 = ProcStat.cpuTicks(sinkPid).orElse(0);
        long t = System.nanoTime();
        RawTcp.send(sink, src.memory(), settings.linkRate(), checked);
        double seconds = (System.nanoTime() - t) / 1e9;
        return measured(
                settings.size(),
                seconds,
                1.0,
                ProcStat.cpuTicks(self).orElse(0) - s0,
                ProcStat.cpuTicks(sinkPid).orElse(0) - r0);
    }

    private record Measured(double mbPerSec, double wireRatio, double senderCpuPerGiB, double receiverCpuPerGiB) {
        @Override
        public String toString() {
            return String.format(
                    Locale.ROOT,
                    "%.0f MB/s, CPU per GiB %.2f s sending, %.2f s receiving",
                    mbPerSec,
                    senderCpuPerGiB,
                    receiverCpuPerGiB);
        }
    }

    private static Measured measured(
            long bytes, double seconds, double wireRatio, long senderTicks, long receiverTicks) {
        double gib = bytes / (double) (1L << 30);
        return new Measured(
                bytes / 1e6 / Math.max(seconds, 1e-3),
                wireRatio,
                senderTicks / (double) ProcStat.TICKS_PER_SECOND / gib,
                receiverTicks / (double) ProcStat.TICKS_PER_SECOND / gib);
    }

    /** Repetitions of one case. */
    private static final class Runs {
        final List<Double> mbPerSec = new ArrayList<>();
        final List<Double> senderCpu = new ArrayList<>();
        final List<Double> receiverCpu = new ArrayList<>();
        double wire = 1.0;

        void add(Measured m) {
            mbPerSec.add(m.mbPerSec());
            senderCpu.add(m.senderCpuPerGiB());
            receiverCpu.add(m.receiverCpuPerGiB());
            wire = m.wireRatio();
        }

        Case toCase(String pattern, String transport, int streams) {
            return new Case(pattern, transport, streams, mbPerSec, wire, senderCpu, receiverCpu);
        }
    }

    private Measured migrate(
            ClusterFile cluster,
            ClusterFile.Host source,
            ClusterFile.Host target,
            String vm,
            Pattern p,
            long size,
            int streams,
            ProcessMemory s,
            ProcessMemory r) {
        try (AgentClient a = LocalCluster.client(cluster, source, Duration.ofSeconds(300));
                AgentClient b = LocalCluster.client(cluster, target, Duration.ofSeconds(300))) {
            a.createVm(CreateVmRequest.newBuilder()
                    .setSpec(spec(vm, p, size))
                    .setStart(true)
                    .build());
            long[] round0 = {0};
            try {
                touchAndFree(scratchDir, size + WARM_SLACK);
            } catch (IOException e) {
                throw new CliException("cannot warm memory before the run: " + e.getMessage());
            }
            // CPU from here on is the migration's (creating the VM, which writes its memory, is not).
            long s0 = ProcStat.cpuTicks(source.pid()).orElse(0);
            long r0 = ProcStat.cpuTicks(target.pid()).orElse(0);
            MigrationEvent done = a.migrate(
                    MigrateRequest.newBuilder()
                            .setVm(vm)
                            .setTargetHost(target.id())
                            .setTargetEndpoint(target.endpoint())
                            .setOptions(MigrationOptions.newBuilder()
                                    .setStreams(streams)
                                    .setVerify(false)
                                    .setMaxBandwidthBytesPerSec(settings.linkRate()))
                            .build(),
                    e -> {
                        if (e.hasRound()
                                && !e.getRound().getPartial()
                                && e.getRound().getRound() == 0) {
                            round0[0] = e.getRound().getRoundMs();
                        }
                    });
            long sent = ProcStat.cpuTicks(source.pid()).orElse(0) - s0;
            long received = ProcStat.cpuTicks(target.pid()).orElse(0) - r0;
            MigrationSummary sum = done.getSummary();
            if (sum.getStatus() != MigrationPhase.MIGRATION_PHASE_COMPLETED) {
                throw new CliException("benchmark migration failed: " + sum.getError());
            }
            b.deleteVm(vm);
            return measured(
                    size, Math.max(1, round0[0]) / 1e3, (double) sum.getBytesTransferred() / size, sent, received);
        }
    }

    private static VmSpec spec(String name, Pattern p, long size) {
        return VmSpec.newBuilder()
                .setSchemaVersion(1)
                .setName(name)
                .setMemoryBytes(size)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder().setPattern(p).setDirtyRatePagesPerSec(0))
                .build();
    }

    private static Process startSink(Path ramDir, Path endpointFile) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(
                ProcessHandle.current().info().command().orElse("java"),
                "--enable-native-access=ALL-UNNAMED",
                "-XX:+UseParallelGC",
                "-Xmx256m",
                "-cp",
                System.getProperty("java.class.path"),
                "dev.ferry.cli.Main",
                "bench",
                "raw-sink",
                "--ram-dir",
                ramDir.toString(),
                "--endpoint-file",
                endpointFile.toString()));
        return new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(
                        endpointFile.resolveSibling("sink.log").toFile()))
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                .start();
    }

    private record SinkEndpoints(InetSocketAddress raw, dev.ferry.rpc.Endpoint.Tcp grpc) {}

    private static SinkEndpoints endpoint(Path file, Process sink) throws InterruptedException, IOException {
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (!Files.exists(file)) {
            if (!sink.isAlive() || System.nanoTime() > deadline) {
                throw new CliException("the raw TCP receiver did not start; see " + file.resolveSibling("sink.log"));
            }
            Thread.sleep(50);
        }
        String[] ports = Files.readString(file, StandardCharsets.UTF_8).trim().split(" ");
        return new SinkEndpoints(
                new InetSocketAddress("127.0.0.1", Integer.parseInt(ports[0])),
                new dev.ferry.rpc.Endpoint.Tcp("127.0.0.1", Integer.parseInt(ports[1])));
    }

    /** The receiver process of the baselines (ferry bench raw-sink): raw TCP and the gRPC floor, on loopback. */
    public static void serveRawSink(Path ramDir, Path endpointFile) throws IOException {
        Files.createDirectories(ramDir);
        io.grpc.Server grpc = GrpcBytes.serve(ramDir);
        try (ServerSocketChannel server = ServerSocketChannel.open()) {
            server.bind(new InetSocketAddress("127.0.0.1", 0));
            Path tmp = endpointFile.resolveSibling(endpointFile.getFileName() + ".tmp");
            Files.writeString(tmp, ((InetSocketAddress) server.getLocalAddress()).getPort() + " " + grpc.getPort());
            Files.move(tmp, endpointFile, StandardCopyOption.ATOMIC_MOVE);
            RawTcp.serve(server, ramDir);
        }
    }

    private static void deleteTree(Path p) {
        if (!Files.exists(p)) {
            return;
        }
        try (var s = Files.walk(p)) {
            for (Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        } catch (IOException e) {
            // best effort
        }
    }
}
