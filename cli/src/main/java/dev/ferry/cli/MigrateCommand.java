package dev.ferry.cli;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.OnTimeout;
import dev.ferry.proto.coordinator.MigrateRequest;
import dev.ferry.proto.coordinator.MigrationView;
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
            "The migration is the cluster's job, not the terminal's: --detach returns its id at once, "
                    + "`ferry migrate watch VM|ID` attaches from any terminal, a hang-up (SIGHUP) never cancels it.",
            "Ctrl-C cancels it (the VM keeps running where it was); on a terminal only a second Ctrl-C "
                    + "within 5 s does, the first one asks."
        },
        subcommands = {MigrateCommand.Watch.class, MigrateCommand.ListMigrations.class, MigrateCommand.SetLimits.class})
final class MigrateCommand implements java.util.concurrent.Callable<Integer> {
    /** How long a first Ctrl-C on a terminal waits for the second one that cancels. */
    static final long CONFIRM_NANOS = TimeUnit.SECONDS.toNanos(5);

    @Mixin
    ClusterOption cluster;

    // Optional for picocli only, so that `migrate watch` and `migrate list` parse: call() requires it.
    @Parameters(index = "0", paramLabel = "VM", arity = "0..1")
    String vm;

    @Option(
            names = "--detach",
            description = "Start the migration, print its id and return; it goes on in the cluster "
                    + "(`ferry migrate watch ID`, `ferry migrate list`).")
    boolean detach;

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
        if (vm == null) {
            throw new CliException(
                    "a VM to migrate is needed: ferry migrate VM [--to HOST] (or migrate watch|list)", 2);
        }
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
            if (detach) {
                return detach(c, options);
            }
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
     * Starts the migration and returns once the cluster has taken it: its first progress event,
     * or its end if it ends first (a refusal, say). Closing the call then does not stop it: the
     * coordinator runs it as an intent, whoever watches.
     */
    private int detach(CoordinatorClient c, MigrationOptions options) {
        String id = requestId.id();
        MigrateRequest req = MigrateRequest.newBuilder()
                .setVm(vm)
                .setTargetHost(to == null ? "" : to)
                .setOptions(options)
                .setRequestId(id)
                .build();
        java.util.concurrent.CompletableFuture<MigrationEvent> first = new java.util.concurrent.CompletableFuture<>();
        Thread call = Thread.ofPlatform().daemon().name("ferry-migrate-detach").start(() -> {
            try {
                first.complete(c.migrate(req, first::complete));
            } catch (RuntimeException e) {
                first.completeExceptionally(e);
            }
        });
        MigrationEvent e;
        try {
            e = first.get(60, TimeUnit.SECONDS);
        } catch (java.util.concurrent.ExecutionException x) {
            throw x.getCause() instanceof RuntimeException r
                    ? r
                    : new CliException(x.getCause().toString());
        } catch (java.util.concurrent.TimeoutException x) {
            throw new CliException("the coordinator did not start the migration of " + vm + " within 60 s; it may "
                    + "still: ferry migrate list " + vm);
        } catch (InterruptedException x) {
            Thread.currentThread().interrupt();
            throw new CliException("interrupted");
        }
        call.interrupt();
        if (e.hasSummary() && e.getSummary().getStatus() != MigrationPhase.MIGRATION_PHASE_COMPLETED) {
            System.err.println("ferry: the migration of " + vm + " ended: "
                    + e.getSummary().getError());
            return 1;
        }
        if (json) {
            System.out.println(Json.write(java.util.Map.of("vm", vm, "id", id)));
        } else {
            System.out.println(id);
            System.err.println("ferry: migrating " + vm + " in the cluster; watch it with `ferry migrate watch " + id
                    + "`, cancel it with `ferry cancel " + vm + "`");
        }
        return 0;
    }

    /**
     * Runs one migration through the coordinator, showing progress; with {@code cancelOnInterrupt}
     * a Ctrl-C cancels it and waits for the VM to be settled on the source (on a terminal, a
     * second Ctrl-C within 5 s: the first one asks). A hang-up never cancels: the terminal going
     * away (a dropped SSH session) is not an operator's decision.
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
        java.util.concurrent.atomic.AtomicBoolean hungUp = new java.util.concurrent.atomic.AtomicBoolean();
        Thread hook = new Thread(
                () -> {
                    // A hang-up exits too (the shutdown hooks run): it must not cancel.
                    if (ended.getCount() == 0 || hungUp.get()) {
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
            Signals.onHangup(() -> {
                hungUp.set(true);
                System.err.println("ferry: hung up; the migration of " + vm + " goes on in the cluster ("
                        + "`ferry migrate watch " + vm + "`)");
                System.exit(129);
            });
            // JDK 22+ has a Console without a terminal too: ask only a person at a terminal.
            if (System.console() != null && System.console().isTerminal()) {
                Signals.confirmInterrupt(
                        CONFIRM_NANOS,
                        () -> System.err.println(System.lineSeparator() + "ferry: Ctrl-C again within 5 s cancels the "
                                + "migration of " + vm + " (it stays where it runs); otherwise it goes on"));
            }
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

    @Command(
            name = "watch",
            description = {
                "Attach to a running migration from any terminal: its progress until it ends, then its outcome.",
                "VM|ID: the VM (its running or latest migration) or a migration's id. Ctrl-C detaches; it never cancels."
            })
    static final class Watch implements java.util.concurrent.Callable<Integer> {
        @Mixin
        ClusterOption cluster;

        @Parameters(index = "0", paramLabel = "VM|ID")
        String which;

        @Option(names = "--json", description = "Print one JSON object at the end instead of progress.")
        boolean json;

        @Override
        public Integer call() {
            try (CoordinatorClient c = cluster.client()) {
                MigrationView m = find(c.migrations(""), which);
                ProgressPrinter printer = new ProgressPrinter(System.out, json);
                MigrationSummary s;
                if (m.getState().equals("running")) {
                    if (!json) {
                        System.err.println("ferry: watching migration " + m.getId() + " of " + m.getVm() + " ("
                                + (m.getSource().isEmpty() ? "?" : m.getSource()) + " -> "
                                + (m.getTarget().isEmpty() ? "?" : m.getTarget())
                                + "); Ctrl-C detaches, it never cancels");
                    }
                    // The same request id attaches to the intent's run instead of starting another.
                    s = run(c, m.getVm(), m.getTarget(), m.getOptions(), m.getId(), printer, false);
                } else {
                    s = m.getSummary();
                    printer.finish(s);
                }
                if (json) {
                    System.out.println(Json.write(Json.migration(s)));
                }
                return s.getStatus() == MigrationPhase.MIGRATION_PHASE_COMPLETED ? 0 : 1;
            }
        }

        /** The migration with id {@code which}, else the VM's running one, else the VM's latest. */
        static MigrationView find(java.util.List<MigrationView> all, String which) {
            for (MigrationView m : all) {
                if (m.getId().equals(which)) {
                    return m;
                }
            }
            // The list is running first, then newest first.
            for (MigrationView m : all) {
                if (m.getVm().equals(which)) {
                    return m;
                }
            }
            throw new CliException("no migration of a VM named " + which + " or with that id (ferry migrate list)");
        }
    }

    @Command(
            name = "list",
            description =
                    "Running migrations and those the coordinator keeps (--intent-retention-minutes), newest first.")
    static final class ListMigrations implements java.util.concurrent.Callable<Integer> {
        @Mixin
        ClusterOption cluster;

        @Parameters(index = "0", paramLabel = "VM", arity = "0..1", description = "Only this VM's.")
        String vm;

        @Option(names = "--json", description = "Print JSON.")
        boolean json;

        @Override
        public Integer call() {
            try (CoordinatorClient c = cluster.client()) {
                java.util.List<MigrationView> all = c.migrations(vm == null ? "" : vm);
                if (json) {
                    java.util.List<java.util.Map<String, Object>> rows = new java.util.ArrayList<>();
                    for (MigrationView m : all) {
                        java.util.Map<String, Object> r = new java.util.LinkedHashMap<>();
                        r.put("id", m.getId());
                        r.put("vm", m.getVm());
                        r.put("source", m.getSource());
                        r.put("target", m.getTarget());
                        r.put("state", m.getState());
                        r.put("createdAtMs", m.getCreatedAtMs());
                        r.put("finishedAtMs", m.getFinishedAtMs());
                        if (m.hasSummary() && m.getSummary().getTotalMs() > 0) {
                            r.put("summary", Json.migration(m.getSummary()));
                        }
                        if (!m.getError().isEmpty()) {
                            r.put("error", m.getError());
                        }
                        rows.add(r);
                    }
                    System.out.println(Json.write(java.util.Map.of("migrations", rows)));
                    return 0;
                }
                System.out.printf(
                        "%-28s %-14s %-10s %-10s %-10s %-20s %9s %9s%n",
                        "ID", "VM", "SOURCE", "TARGET", "STATE", "STARTED", "TOTAL", "DOWNTIME");
                for (MigrationView m : all) {
                    boolean ended = !m.getState().equals("running");
                    System.out.printf(
                            "%-28s %-14s %-10s %-10s %-10s %-20s %9s %9s%n",
                            m.getId(),
                            m.getVm(),
                            m.getSource().isEmpty() ? "-" : m.getSource(),
                            m.getTarget().isEmpty() ? "-" : m.getTarget(),
                            m.getState(),
                            java.time.Instant.ofEpochMilli(m.getCreatedAtMs())
                                    .truncatedTo(java.time.temporal.ChronoUnit.SECONDS),
                            ended ? m.getSummary().getTotalMs() + " ms" : "-",
                            ended ? m.getSummary().getDowntimeMs() + " ms" : "-");
                }
                return 0;
            }
        }
    }

    @Command(
            name = "set",
            description = "Change a running migration's limits: the bandwidth cap at once, the downtime limit from "
                    + "the next round's decision on. The progress shows the rounds that follow.")
    static final class SetLimits implements java.util.concurrent.Callable<Integer> {
        @Mixin
        ClusterOption cluster;

        @Parameters(index = "0", paramLabel = "VM")
        String vm;

        @Option(
                names = "--max-bandwidth",
                paramLabel = "RATE",
                description = "Bytes per second over all streams, e.g. 500M; 0 or unlimited: no cap.")
        String maxBandwidth;

        @Option(names = "--downtime-ms", description = "Longest acceptable pause.")
        Integer downtimeMs;

        @Override
        public Integer call() {
            if (maxBandwidth == null && downtimeMs == null) {
                throw new CliException("nothing to change: give --max-bandwidth and/or --downtime-ms", 2);
            }
            dev.ferry.proto.agent.SetMigrationLimitsRequest.Builder b =
                    dev.ferry.proto.agent.SetMigrationLimitsRequest.newBuilder().setVm(vm);
            if (downtimeMs != null) {
                if (downtimeMs <= 0) {
                    throw new CliException("--downtime-ms must be positive", 2);
                }
                b.setDowntimeMs(downtimeMs);
            }
            if (maxBandwidth != null) {
                b.setMaxBandwidthBytesPerSec(
                        maxBandwidth.equals("unlimited") || maxBandwidth.equals("0")
                                ? 0
                                : Sizes.parseRate(maxBandwidth));
            }
            try (CoordinatorClient c = cluster.client()) {
                System.out.println(c.setMigrationLimits(b.build()).getMessage());
                return 0;
            }
        }
    }
}
