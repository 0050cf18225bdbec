package dev.ferry.cli.bench;

import dev.ferry.agent.client.AgentClient;
import dev.ferry.cli.CliException;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;

/**
 * `ferry bench verify`: what {@code --verify} adds to the pause. Two standalone sim agents (mutual
 * TLS, as every cluster runs), one guest that keeps writing, migrated back and forth, runs with and
 * without {@code --verify} taking turns; the pause and the verification's own time as p50, p90 and
 * max of each.
 */
public final class VerifyBench {
    /** {@code dirtyBytesPerSec} over a {@code workingSet}: how busy the guest is while it moves. */
    public record Settings(long size, int repeat, long dirtyBytesPerSec, long workingSet, int streams) {}

    /** One migration's figures. */
    public record Run(boolean verify, long pauseMs, long verifyMs, long finalPagesMs, long totalMs) {}

    private final Settings settings;
    private final PrintStream say;

    public VerifyBench(Settings settings, PrintStream say) {
        this.settings = settings;
        this.say = say;
    }

    public List<Run> run() throws IOException {
        Path dir = Files.createTempDirectory("ferry-bench-verify-");
        say.println("starting 2 agents (sim driver, mutual TLS) in " + dir);
        ClusterFile cluster =
                LocalCluster.up(dir, LocalCluster.Options.of(2, "sim").standalone(), Duration.ofSeconds(60));
        List<Run> runs = new ArrayList<>();
        try {
            List<ClusterFile.Host> hosts = cluster.hosts();
            try (AgentClient first = LocalCluster.client(cluster, hosts.get(0), Duration.ofSeconds(300))) {
                first.createVm(CreateVmRequest.newBuilder()
                        .setSpec(VmSpec.newBuilder()
                                .setSchemaVersion(1)
                                .setName("bench-verify")
                                .setMemoryBytes(settings.size())
                                .setVcpus(1)
                                .setWorkload(Workload.newBuilder()
                                        .setPattern(Pattern.PATTERN_RANDOM)
                                        .setDirtyRatePagesPerSec(settings.dirtyBytesPerSec() / 4096)
                                        .setWorkingSetBytes(settings.workingSet())))
                        .setStart(true)
                        .build());
            }
            int at = 0;
            // A warm-up pair first (a fresh JVM runs interpreted), then the measured ones.
            for (int i = -1; i < settings.repeat(); i++) {
                for (boolean verify : List.of(false, true)) {
                    ClusterFile.Host from = hosts.get(at);
                    ClusterFile.Host to = hosts.get(1 - at);
                    MigrationSummary s = migrate(cluster, from, to, verify);
                    at = 1 - at;
                    if (i < 0) {
                        say.printf(
                                Locale.ROOT,
                                "  warm-up %s: pause %d ms%n",
                                verify ? "--verify" : "plain",
                                s.getDowntimeMs());
                        continue;
                    }
                    Run r = new Run(verify, s.getDowntimeMs(), s.getVerifyMs(), s.getFinalPagesMs(), s.getTotalMs());
                    runs.add(r);
                    say.printf(
                            Locale.ROOT,
                            "  %-9s pause %4d ms (final pages %d, verify %d), total %d ms%n",
                            verify ? "--verify" : "plain",
                            r.pauseMs(),
                            r.finalPagesMs(),
                            r.verifyMs(),
                            r.totalMs());
                }
            }
        } finally {
            LocalCluster.down(dir, Duration.ofSeconds(30));
        }
        return runs;
    }

    private static MigrationSummary migrate(
            ClusterFile cluster, ClusterFile.Host from, ClusterFile.Host to, boolean verify) {
        try (AgentClient a = LocalCluster.client(cluster, from, Duration.ofSeconds(300))) {
            MigrationSummary s = a.migrate(
                            MigrateRequest.newBuilder()
                                    .setVm("bench-verify")
                                    .setTargetHost(to.id())
                                    .setTargetEndpoint(to.endpoint())
                                    .setOptions(MigrationOptions.newBuilder()
                                            .setVerify(verify)
                                            .setStreams(2))
                                    .build(),
                            e -> {})
                    .getSummary();
            if (s.getStatus() != MigrationPhase.MIGRATION_PHASE_COMPLETED) {
                throw new CliException("benchmark migration failed: " + s.getError());
            }
            return s;
        }
    }

    /** p50, p90 and max of {@code values}, as "p50/p90/max". */
    static String distribution(List<Long> values) {
        if (values.isEmpty()) {
            return "-";
        }
        List<Long> s = new ArrayList<>(values);
        Collections.sort(s);
        return percentile(s, 50) + "/" + percentile(s, 90) + "/" + s.getLast();
    }

    /** Nearest-rank percentile of sorted values. */
    static long percentile(List<Long> sorted, int p) {
        int rank = (int) Math.ceil(p / 100.0 * sorted.size());
        return sorted.get(Math.max(0, Math.min(sorted.size() - 1, rank - 1)));
    }

    public static String table(Settings settings, List<Run> runs) {
        List<Long> plainPause =
                runs.stream().filter(r -> !r.verify()).map(Run::pauseMs).toList();
        List<Long> verifyPause =
                runs.stream().filter(Run::verify).map(Run::pauseMs).toList();
        List<Long> verifyOwn =
                runs.stream().filter(Run::verify).map(Run::verifyMs).toList();
        StringBuilder b = new StringBuilder();
        b.append(String.format(
                Locale.ROOT,
                "guest %d MiB writing %d MiB/s over %d MiB, %d runs each, 2 streams; ms as p50/p90/max%n",
                settings.size() >> 20,
                settings.dirtyBytesPerSec() >> 20,
                settings.workingSet() >> 20,
                settings.repeat()));
        b.append(String.format(Locale.ROOT, "pause without --verify   %s%n", distribution(plainPause)));
        b.append(String.format(Locale.ROOT, "pause with --verify      %s%n", distribution(verifyPause)));
        b.append(String.format(Locale.ROOT, "  of which verification  %s%n", distribution(verifyOwn)));
        return b.toString();
    }
}
