package dev.ferry.cli;

import dev.ferry.cli.bench.QemuBench;
import dev.ferry.cli.bench.QemuBenchReport;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(
        name = "qemu",
        description = {
            "Ferry's pre-copy against QEMU's own migration (one stream, and multifd) on the same guests and "
                    + "workloads.",
            "Starts its own local cluster (qemu driver) and its own QEMUs; needs qemu-system-x86_64. "
                    + "Figures: total time, downtime, bytes on the wire, rounds, CPU; Ferry/QEMU ratios; stale pages "
                    + "the guest found."
        })
final class QemuBenchCommand implements java.util.concurrent.Callable<Integer> {
    @Option(names = "--sizes", defaultValue = "1G,4G", description = "Guest RAM sizes (default: ${DEFAULT-VALUE}).")
    String sizes;

    @Option(
            names = "--workloads",
            defaultValue = "idle,ws32m,ws256m,nonconverging",
            description = "Guest loads: idle, ws32m, ws256m, nonconverging (default: ${DEFAULT-VALUE}).")
    String workloads;

    @Option(
            names = "--modes",
            defaultValue = "ferry,qemu-single,qemu-multifd,qemu-multifd-anon",
            description =
                    "ferry, qemu-single, qemu-multifd, qemu-multifd-anon (QEMU with its own anonymous RAM, a reference), "
                            + "qemu-multifd-ac (default: ${DEFAULT-VALUE}).")
    String modes;

    @Option(
            names = "--repeat",
            defaultValue = "3",
            description = "Runs per case; medians are reported (default: ${DEFAULT-VALUE}).")
    int repeat;

    @Option(
            names = "--downtime-ms",
            defaultValue = "300",
            description = "Downtime limit of both (default: ${DEFAULT-VALUE}).")
    int downtimeMs;

    @Option(
            names = "--channels",
            defaultValue = "2",
            description = "Ferry's streams and QEMU's multifd channels (default: ${DEFAULT-VALUE}).")
    int channels;

    @Option(
            names = "--qemu-max-bandwidth",
            defaultValue = "10G",
            description = "QEMU's max-bandwidth, bytes/s (default: ${DEFAULT-VALUE}; QEMU's own default throttles it).")
    String maxBandwidth;

    @Option(
            names = "--settle",
            defaultValue = "5",
            paramLabel = "SECONDS",
            description =
                    "How long the guest runs before it moves, from its first heartbeat (default: ${DEFAULT-VALUE}).")
    double settle;

    @Option(
            names = "--observe",
            defaultValue = "5",
            paramLabel = "SECONDS",
            description =
                    "How long the guest is watched on the destination for stale pages (default: ${DEFAULT-VALUE}).")
    double observe;

    @Option(
            names = "--qemu-timeout",
            defaultValue = "60",
            paramLabel = "SECONDS",
            description =
                    "QEMU never gives up by itself: cancel its migration after this long (default: ${DEFAULT-VALUE}).")
    int qemuTimeout;

    @Option(
            names = "--auto-converge",
            negatable = true,
            defaultValue = "true",
            fallbackValue = "true",
            description =
                    "Add a QEMU multifd run with auto-converge (vCPU throttling) for the non-converging workload (default: on).")
    boolean autoConverge;

    @Option(
            names = "--warm",
            negatable = true,
            defaultValue = "true",
            fallbackValue = "true",
            description = "Warm host memory before each migration (default: on).")
    boolean warm;

    @Option(
            names = "--qemu-hook",
            negatable = true,
            defaultValue = "true",
            fallbackValue = "true",
            description =
                    "Preload Ferry's dirty-tracking hook into the QEMU-native guests too, as the driver does (default: on).")
    boolean qemuHook;

    @Option(
            names = "--ferry-warmup",
            defaultValue = "4",
            paramLabel = "N",
            description = "Unmeasured migrations between the fresh agents first, so their JIT has compiled the paths "
                    + "(default: ${DEFAULT-VALUE}).")
    int ferryWarmup;

    @Option(
            names = "--nonconverging-cap",
            defaultValue = "50M",
            paramLabel = "RATE",
            description =
                    "Bandwidth cap of both Ferry and QEMU for the non-converging workload, so the guest outruns them "
                            + "by construction; 0 = uncapped (default: ${DEFAULT-VALUE}).")
    String nonconvergingCap;

    @Option(names = "--json", description = "Print every figure as JSON.")
    boolean json;

    @Option(names = "--json-file", paramLabel = "FILE", description = "Also write every figure as JSON to FILE.")
    java.nio.file.Path jsonFile;

    @Override
    public Integer call() throws Exception {
        QemuBench.Settings s = QemuBench.parse(
                sizes,
                workloads,
                modes,
                repeat,
                downtimeMs,
                channels,
                maxBandwidth,
                settle,
                observe,
                qemuTimeout,
                autoConverge,
                warm,
                qemuHook,
                ferryWarmup,
                nonconvergingCap);
        QemuBenchReport r = new QemuBench(s, json ? System.err : System.out).run();
        if (jsonFile != null) {
            java.nio.file.Files.writeString(jsonFile, Json.write(r.toJson()) + "\n");
        }
        if (json) {
            System.out.println(Json.write(r.toJson()));
        } else {
            System.out.println();
            System.out.println(r.table());
        }
        return 0;
    }
}
