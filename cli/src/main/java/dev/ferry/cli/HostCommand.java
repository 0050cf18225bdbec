package dev.ferry.cli;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.MoveState;
import dev.ferry.proto.cluster.VmMove;
import dev.ferry.proto.coordinator.DrainProgress;
import dev.ferry.proto.coordinator.DrainRequest;
import dev.ferry.proto.coordinator.HostView;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
        name = "host",
        description = "Hosts of the cluster: list them, drain one for maintenance, activate it again.",
        subcommands = {HostCommand.ListHosts.class, HostCommand.Drain.class, HostCommand.Activate.class})
final class HostCommand implements Runnable {
    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(
                new picocli.CommandLine(this), "missing subcommand: list, drain or activate");
    }

    @Command(name = "list", description = "List hosts: alive, maintenance, capacity, VMs.")
    static final class ListHosts implements Runnable {
        @Mixin
        ClusterOption cluster;

        @Option(names = "--json", description = "Print JSON.")
        boolean json;

        @Override
        public void run() {
            try (CoordinatorClient c = cluster.client()) {
                printHosts(c.hosts(), json, System.out);
            }
        }
    }

    static Map<String, Object> row(HostView h) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("id", h.getId());
        r.put("alive", h.getAlive());
        r.put("maintenance", h.getMaintenance());
        r.put("endpoint", h.getEndpoint());
        r.put("memoryBytes", h.getMemoryBytes());
        r.put("usedMemoryBytes", h.getUsedMemoryBytes());
        r.put("vcpus", h.getVcpus());
        r.put("usedVcpus", h.getUsedVcpus());
        r.put("vms", h.getVmsList());
        r.put("driver", h.getDriver());
        if (h.getAlive()) {
            r.put("precopy", h.getPrecopy());
            r.put("dirtyTracking", h.getDirtyTracking());
            r.put("qemuVersion", h.getQemuVersion());
            r.put("accelerator", h.getAccelerator());
            r.put("machineTypes", h.getMachineTypesList());
            r.put("machineAliases", h.getMachineAliasesMap());
            r.put("cpuModels", h.getCpuModelsList());
            r.put("bridges", h.getBridgesList());
        }
        if (!h.getLabelsMap().isEmpty()) {
            r.put("labels", h.getLabelsMap());
        }
        if (h.getLostAtMs() > 0) {
            r.put("lostAtMs", h.getLostAtMs());
        }
        if (h.getCertificateNotAfterMs() > 0) {
            r.put("certificateNotAfterMs", h.getCertificateNotAfterMs());
            r.put("caNotAfterMs", h.getCaNotAfterMs());
        }
        return r;
    }

    /** "qemu 7.2.22/tcg, 38 CPU models", "sim", or "-" for a host that is down or reports nothing. */
    static String hypervisor(HostView h) {
        if (!h.getAlive() || h.getQemuVersion().isEmpty()) {
            return "-";
        }
        if (h.getQemuVersion().equals("sim")) {
            return "sim";
        }
        return "qemu " + h.getQemuVersion() + "/" + h.getAccelerator() + ", " + h.getCpuModelsCount() + " CPU models";
    }

    static void printHosts(List<HostView> hosts, boolean json, PrintStream out) {
        if (json) {
            List<Map<String, Object>> rows = new ArrayList<>();
            for (HostView h : hosts) {
                rows.add(row(h));
            }
            out.println(Json.write(Map.of("hosts", rows)));
            return;
        }
        // HYPERVISOR last, so that readers of the earlier columns (by position) still find theirs.
        out.printf(
                "%-10s %-6s %-12s %-22s %-20s %-9s %-8s %-16s %s%n",
                "HOST",
                "ALIVE",
                "MAINTENANCE",
                "ENDPOINT",
                "MEMORY USED/TOTAL",
                "VCPUS",
                "PRECOPY",
                "VMS",
                "HYPERVISOR");
        for (HostView h : hosts) {
            out.printf(
                    "%-10s %-6s %-12s %-22s %-20s %-9s %-8s %-16s %s%n",
                    h.getId(),
                    h.getAlive() ? "yes" : "no",
                    h.getMaintenance() ? "yes" : "no",
                    h.getEndpoint().isEmpty() ? "-" : h.getEndpoint(),
                    h.getAlive() ? Sizes.format(h.getUsedMemoryBytes()) + "/" + Sizes.format(h.getMemoryBytes()) : "-",
                    h.getAlive() ? h.getUsedVcpus() + "/" + h.getVcpus() : "-",
                    h.getAlive() ? (h.getPrecopy() ? "yes" : "no") : "-",
                    h.getVmsList().isEmpty() ? "-" : String.join(",", h.getVmsList()),
                    hypervisor(h));
        }
        for (HostView h : hosts) {
            if (h.getAlive() && !h.getPrecopy()) {
                // Why, so that nobody has to find the agent's start-up log.
                out.printf("%s cannot run pre-copy: %s%n", h.getId(), h.getDirtyTracking());
            }
        }
    }

    @Command(
            name = "drain",
            description = {
                "Put a host into maintenance and move every VM off it, live, N at a time.",
                "Without --wait it returns once the drain is under way (it goes on in the cluster, across leader changes)."
            })
    static final class Drain implements java.util.concurrent.Callable<Integer> {
        @Mixin
        ClusterOption cluster;

        @Parameters(index = "0", paramLabel = "HOST")
        String host;

        @Option(names = "--wait", description = "Follow the drain to its end; exit 1 if a VM could not move.")
        boolean waitForEnd;

        @Option(
                names = "--parallel",
                defaultValue = "1",
                description = "Migrations at a time (default: ${DEFAULT-VALUE}).")
        int parallel;

        @Option(
                names = "--max-bandwidth",
                paramLabel = "RATE",
                description = "Cap for the whole drain, bytes per second, e.g. 500M: each migration gets an even "
                        + "share of it (at most --parallel run at once).")
        String maxBandwidth;

        @Option(
                names = "--downtime-ms",
                description = "Longest acceptable pause of each migration (default: migrate's, 300).")
        Integer downtimeMs;

        @Option(names = "--json", description = "Print the final progress as JSON.")
        boolean json;

        @Mixin
        RequestIdOption requestId;

        @Override
        public Integer call() {
            if (parallel < 1 || parallel > 64) {
                throw new IllegalArgumentException("--parallel must be between 1 and 64");
            }
            MigrationOptions.Builder o = MigrationOptions.newBuilder();
            if (maxBandwidth != null) {
                o.setMaxBandwidthBytesPerSec(Sizes.parseRate(maxBandwidth));
            }
            if (downtimeMs != null) {
                if (downtimeMs <= 0) {
                    throw new IllegalArgumentException("--downtime-ms must be positive");
                }
                o.setDowntimeMs(downtimeMs);
            }
            DrainRequest req = DrainRequest.newBuilder()
                    .setHost(host)
                    .setParallel(parallel)
                    .setOptions(o)
                    .setRequestId(requestId.id())
                    .build();
            PrintStream say = json ? System.err : System.out;
            try (CoordinatorClient c = cluster.client()) {
                DrainPrinter printer = new DrainPrinter(say);
                DrainProgress end = c.drain(req, printer::show, waitForEnd);
                if (json) {
                    System.out.println(Json.write(drainJson(end)));
                }
                if (!waitForEnd) {
                    say.println("draining " + host + ": " + end.getMovesCount() + " VM(s) to move (intent "
                            + end.getIntentId() + "); follow with 'ferry host list'");
                    return 0;
                }
                printer.show(end);
                say.println(end.getMessage());
                return end.getState() == IntentState.INTENT_STATE_DONE ? 0 : 1;
            }
        }
    }

    /** The drain object of `ferry host drain --json` and `ferry demo --json`. */
    static Map<String, Object> drainJson(DrainProgress p) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("host", p.getHost());
        out.put(
                "status",
                switch (p.getState()) {
                    case INTENT_STATE_DONE -> "completed";
                    case INTENT_STATE_FAILED -> "failed";
                    default -> "running";
                });
        out.put("intentId", p.getIntentId());
        List<Map<String, Object>> moved = new ArrayList<>();
        List<Map<String, Object>> failed = new ArrayList<>();
        for (VmMove m : p.getMovesList()) {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("vm", m.getVm());
            r.put("to", m.getTarget());
            r.put("live", !m.getCold());
            if (m.getState() == MoveState.MOVE_STATE_DONE) {
                r.put("totalMs", m.getTotalMs());
                r.put("downtimeMs", m.getDowntimeMs());
                moved.add(r);
            } else if (m.getState() == MoveState.MOVE_STATE_FAILED) {
                r.put("reason", m.getReason());
                failed.add(r);
            }
        }
        out.put("moved", moved);
        out.put("failed", failed);
        if (p.getElapsedMs() > 0) {
            out.put("totalMs", p.getElapsedMs());
        }
        return out;
    }

    /** One line per VM whose move changed state. */
    static final class DrainPrinter {
        private final PrintStream out;
        private final Map<String, MoveState> shown = new HashMap<>();

        DrainPrinter(PrintStream out) {
            this.out = out;
        }

        void show(DrainProgress p) {
            for (VmMove m : p.getMovesList()) {
                if (shown.get(m.getVm()) == m.getState()) {
                    continue;
                }
                shown.put(m.getVm(), m.getState());
                switch (m.getState()) {
                    case MOVE_STATE_MIGRATING ->
                        out.println("  " + m.getVm() + ": moving to " + m.getTarget() + " ...");
                    case MOVE_STATE_DONE ->
                        out.println("  " + m.getVm() + ": on " + m.getTarget()
                                + (m.getCold()
                                        ? " (stopped; ownership only)"
                                        : String.format(
                                                Locale.ROOT,
                                                " (%d ms, %d ms paused)",
                                                m.getTotalMs(),
                                                m.getDowntimeMs())));
                    case MOVE_STATE_FAILED -> out.println("  " + m.getVm() + ": cannot move: " + m.getReason());
                    default -> {}
                }
            }
        }
    }

    @Command(name = "activate", description = "End a host's maintenance: it takes VMs again.")
    static final class Activate implements Runnable {
        @Mixin
        ClusterOption cluster;

        @Parameters(index = "0", paramLabel = "HOST")
        String host;

        @Mixin
        RequestIdOption requestId;

        @Override
        public void run() {
            try (CoordinatorClient c = cluster.client()) {
                HostView h = c.activate(host, requestId.id());
                System.out.println(host + " is active" + (h.getAlive() ? "" : " (but not alive in the cluster)"));
            }
        }
    }
}
