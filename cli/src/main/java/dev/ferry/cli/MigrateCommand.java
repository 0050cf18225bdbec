package dev.ferry.cli;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.OnTimeout;
import dev.ferry.proto.coordinator.MigrateRequest;
import dev.ferry.proto.migration.TransferMode;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
        name = "migrate",
        description = {
            "Move a running VM to another host, live, through the cluster (intent, placement check, the "
                    + "agents' migration, the ownership commit in ZooKeeper).",
            "Ctrl-C cancels the migration (the VM keeps running where it was)."
        })
final class MigrateCommand implements java.util.concurrent.Callable<Integer> {
    @Mixin
    ClusterOption cluster;

    @Parameters(index = "0", paramLabel = "VM")
    String vm;

    @Option(names = "--to", paramLabel = "HOST", description = "Target host (default: placement chooses).")
    String to;

    @Option(
            names = "--downtime-ms",
            defaultValue = "300",
            description = "Longest acceptable pause (default: ${DEFAULT-VALUE}).")
    int downtimeMs;

    @Option(
            names = "--max-bandwidth",
            paramLabel = "RATE",
            description = "Cap, bytes per second, e.g. 500M (default: none).")
    String maxBandwidth;

    @Option(
            names = "--streams",
            defaultValue = "0",
            description = "Parallel streams (default: one per core, at most 4).")
    int streams;

    @Option(
            names = "--verify",
            description = "Compare a digest of all guest RAM on both hosts before the destination resumes.")
    boolean verify;

    @Option(
            names = "--mode",
            defaultValue = "precopy",
            description = "precopy (Ferry's own) or qemu-native (QEMU's migration stream tunnelled; qemu driver).")
    String mode;

    @Option(names = "--max-rounds", defaultValue = "0", description = "Rounds before the timeout action (default: 30).")
    int maxRounds;

    @Option(
            names = "--timeout",
            paramLabel = "SECONDS",
            defaultValue = "0",
            description = "Seconds before the timeout action (default: 600).")
    int timeoutSeconds;

    @Option(
            names = "--on-timeout",
            defaultValue = "force",
            description =
                    "When memory does not converge: force (pause and finish) or cancel (default: ${DEFAULT-VALUE}).")
    String onTimeout;

    @Option(names = "--json", description = "Print one JSON object instead of progress.")
    boolean json;

    @Option(
            names = "--dry-run",
            description = "Only check: print each check (target alive, memory, vCPUs, machine type, CPU model, dirty"
                    + " tracking) with pass/fail and the reason; exit 0 if the migration would be allowed, 1 if not."
                    + " Nothing moves.")
    boolean dryRun;

    @Mixin
    RequestIdOption requestId;

    @Override
    public Integer call() {
        MigrationOptions options = options();
        if (dryRun) {
            try (CoordinatorClient c = cluster.client()) {
                MigrationDryRun d = MigrationDryRun.of(c.vm(vm), c.hosts(), to, options.getMode());
                if (json) {
                    System.out.println(Json.write(d.json()));
                } else {
                    d.print(System.out);
                }
                return d.allowed() ? 0 : 1;
            }
        }
        MigrationSummary s;
        try (CoordinatorClient c = cluster.client()) {
            s = run(c, vm, to == null ? "" : to, options, requestId.id(), new ProgressPrinter(System.out, json), true);
        }
        if (json) {
            System.out.println(Json.write(Json.migration(s)));
        }
        return s.getStatus() == MigrationPhase.MIGRATION_PHASE_COMPLETED ? 0 : 1;
    }

    MigrationOptions options() {
        if (downtimeMs <= 0) {
            throw new IllegalArgumentException("--downtime-ms must be positive");
        }
        if (streams < 0 || streams > 64) {
            throw new IllegalArgumentException("--streams must be between 1 and 64");
        }
        MigrationOptions.Builder o = MigrationOptions.newBuilder()
                .setDowntimeMs(downtimeMs)
                .setStreams(streams)
                .setVerify(verify)
                .setMaxRounds(Math.max(0, maxRounds))
                .setMaxTimeMs(Math.max(0, timeoutSeconds) * 1000L)
                .setOnTimeout(
                        switch (onTimeout) {
                            case "force" -> OnTimeout.ON_TIMEOUT_FORCE_SWITCHOVER;
                            case "cancel" -> OnTimeout.ON_TIMEOUT_CANCEL;
                            default ->
                                throw new IllegalArgumentException(
                                        "bad --on-timeout '" + onTimeout + "': use force or cancel");
                        })
                .setMode(
                        switch (mode) {
                            case "precopy" -> TransferMode.TRANSFER_MODE_PRECOPY;
                            case "qemu-native" -> TransferMode.TRANSFER_MODE_HYPERVISOR_NATIVE;
                            default ->
                                throw new IllegalArgumentException(
                                        "bad --mode '" + mode + "': use precopy or qemu-native");
                        });
        if (maxBandwidth != null) {
            o.setMaxBandwidthBytesPerSec(Sizes.parseRate(maxBandwidth));
        }
        return o.build();
    }

    /**
     * Runs one migration through the coordinator, showing progress; with {@code cancelOnInterrupt}
     * a Ctrl-C cancels it and waits for the VM to be settled on the source.
     */
    static MigrationSummary run(
            CoordinatorClient c,
            String vm,
            String to,
            MigrationOptions options,
            String requestId,
            ProgressPrinter printer,
            boolean cancelOnInterrupt) {
        CountDownLatch ended = new CountDownLatch(1);
        Thread hook = new Thread(
                () -> {
                    if (ended.getCount() == 0) {
                        return;
                    }
                    try {
                        System.err.println();
                        System.err.println("ferry: " + c.cancelMigration(vm).getMessage());
                        if (!ended.await(30, TimeUnit.SECONDS)) {
                            System.err.println("ferry: the migration had not ended 30 s after the cancel");
                        }
                    } catch (RuntimeException | InterruptedException e) {
                        System.err.println("ferry: could not cancel: " + e.getMessage());
                    }
                },
                "ferry-cancel-on-interrupt");
        if (cancelOnInterrupt) {
            Runtime.getRuntime().addShutdownHook(hook);
        }
        try {
            MigrateRequest req = MigrateRequest.newBuilder()
                    .setVm(vm)
                    .setTargetHost(to)
                    .setOptions(options)
                    .setRequestId(requestId)
                    .build();
            MigrationSummary s = c.migrate(req, printer::event).getSummary();
            printer.finish(s);
            return s;
        } finally {
            ended.countDown();
            if (cancelOnInterrupt) {
                try {
                    Runtime.getRuntime().removeShutdownHook(hook);
                } catch (IllegalStateException shuttingDown) {
                    // the hook is running: it sees `ended` and returns
                }
            }
        }
    }
}
