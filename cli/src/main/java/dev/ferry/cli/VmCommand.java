package dev.ferry.cli;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.cluster.DesiredState;
import dev.ferry.proto.cluster.VmPhase;
import dev.ferry.proto.coordinator.CreateVmRequest;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.DirectBoot;
import dev.ferry.proto.vm.Disk;
import dev.ferry.proto.vm.DiskFormat;
import dev.ferry.proto.vm.HaPolicy;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.Workload;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
        name = "vm",
        description = "Create, list, start, stop and delete VMs (through the cluster coordinator).",
        subcommands = {
            VmCommand.Create.class,
            VmCommand.ListVms.class,
            VmCommand.Show.class,
            VmCommand.Start.class,
            VmCommand.Stop.class,
            VmCommand.Delete.class,
            ConsoleCommand.class
        })
final class VmCommand implements Runnable {
    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(
                new picocli.CommandLine(this),
                "missing subcommand: create, list, show, start, stop, delete or console");
    }

    @Command(name = "create", description = "Define a VM in the cluster, place it on a host and start it.")
    static final class Create implements Runnable {
        @Mixin
        ClusterOption cluster;

        @Parameters(index = "0", paramLabel = "NAME")
        String name;

        @Option(names = "--memory", required = true, paramLabel = "SIZE", description = "Guest RAM, e.g. 512M or 4G.")
        String memory;

        @Option(names = "--vcpus", defaultValue = "1")
        int vcpus;

        @Option(
                names = "--host",
                paramLabel = "HOST",
                description = "Host to run on (default: placement: the live host with the most memory left).")
        String host;

        @Option(
                names = "--restart-priority",
                defaultValue = "0",
                description =
                        "When its host fails and capacity is short, higher restarts first (default: ${DEFAULT-VALUE}).")
        int restartPriority;

        @Option(
                names = "--max-restarts",
                defaultValue = "0",
                description = "Restarts after host failures before it is left FAILED (default: the cluster's, 3).")
        int maxRestarts;

        @Option(
                names = "--anti-affinity",
                paramLabel = "GROUP",
                description = "VMs of one group go to different hosts when they can.")
        String antiAffinity;

        @Option(
                names = "--dirty-rate",
                paramLabel = "RATE",
                defaultValue = "0",
                description = "How fast the guest writes memory, bytes per second, e.g. 32M (default: idle).")
        String dirtyRate;

        @Option(
                names = "--working-set",
                paramLabel = "SIZE",
                description = "Memory the guest writes to (default: all).")
        String workingSet;

        @Option(
                names = "--hot-set",
                paramLabel = "SIZE",
                description = "Part of the working set written most (default: none).")
        String hotSet;

        @Option(names = "--hot-percent", defaultValue = "0", description = "Share of writes that go to the hot set.")
        int hotPercent;

        @Option(
                names = "--pattern",
                defaultValue = "compressible",
                description = "What memory holds: random, compressible or sparse (default: ${DEFAULT-VALUE}).")
        String pattern;

        @Option(
                names = "--machine",
                description = "QEMU machine type (qemu driver); an alias such as pc is pinned to the versioned type"
                        + " the first host resolves (pc-i440fx-7.2).")
        String machine;

        @Option(
                names = "--cpu",
                paramLabel = "MODEL",
                description = "QEMU CPU model, every host that runs the VM must offer it with all its features"
                        + " (default: the cluster's baseline, Nehalem; `ferry host list --json` shows each host's).")
        String cpu;

        @Option(
                names = "--boot",
                paramLabel = "disk|kernel",
                description = "disk: boot the first --disk through the firmware (SeaBIOS), like --disk FILE,boot.")
        String boot;

        @Option(
                names = "--kernel",
                paramLabel = "FILE",
                description = "Boot this kernel instead of the test guest (qemu driver).")
        String kernel;

        @Option(names = "--initrd", paramLabel = "FILE")
        String initrd;

        @Option(names = "--append", paramLabel = "STRING", description = "Kernel command line.")
        String append;

        @Option(
                names = "--disk",
                paramLabel = "FILE[,format=raw|qcow2][,ro][,boot][,cache=MODE]",
                description = "A disk image on storage every host can reach (qemu driver); repeatable. boot: the"
                        + " firmware boots it; cache: none (default), writeback, writethrough, directsync, unsafe.")
        List<String> disks = new ArrayList<>();

        @Option(
                names = "--nic",
                paramLabel = "bridge=BR[,mac=MAC][,model=virtio|e1000]",
                description = "A network card on bridge BR of whichever host runs the VM (a tap the agent creates); "
                        + "the MAC is generated once (52:54:00:xx:xx:xx) unless given, and stays the VM's; "
                        + "repeatable. Only hosts with BR take the VM.")
        List<String> nics = new ArrayList<>();

        @Option(names = "--no-start", description = "Define the VM without starting it.")
        boolean noStart;

        @Mixin
        RequestIdOption requestId;

        @Option(names = "--json", description = "Print JSON.")
        boolean json;

        @Override
        public void run() {
            VmSpec spec = spec();
            try (CoordinatorClient c = cluster.client()) {
                VmView v = c.createVm(CreateVmRequest.newBuilder()
                        .setSpec(spec)
                        .setStart(!noStart)
                        .setHost(host == null ? "" : host)
                        .setRequestId(requestId.id())
                        .build());
                if (json) {
                    System.out.println(Json.write(row(v)));
                } else {
                    System.out.println("created " + name + " on " + v.getOwner() + " ("
                            + Sizes.format(spec.getMemoryBytes()) + ", " + state(v.getState()) + ")");
                }
            }
        }

        VmSpec spec() {
            long mem = Sizes.parseSize(memory);
            if (mem < (1 << 20)) {
                throw new IllegalArgumentException("--memory " + memory + " is too small (at least 1M)");
            }
            long rate = Sizes.parseRate(dirtyRate);
            Workload.Builder w = Workload.newBuilder()
                    .setDirtyRatePagesPerSec(rate / 4096)
                    .setWorkingSetBytes(workingSet == null ? 0 : Sizes.parseSize(workingSet))
                    .setHotSetBytes(hotSet == null ? 0 : Sizes.parseSize(hotSet))
                    .setHotPercent(hotPercent)
                    .setPattern(pattern(pattern));
            if (hotPercent < 0 || hotPercent > 100) {
                throw new IllegalArgumentException("--hot-percent must be between 0 and 100");
            }
            if (vcpus < 1 || vcpus > 255) {
                throw new IllegalArgumentException("--vcpus must be between 1 and 255");
            }
            if (maxRestarts < 0) {
                throw new IllegalArgumentException("--max-restarts must not be negative");
            }
            VmSpec.Builder b = VmSpec.newBuilder()
                    .setSchemaVersion(1)
                    .setName(name)
                    .setMemoryBytes(mem)
                    .setVcpus(vcpus)
                    .setWorkload(w)
                    .setHa(HaPolicy.newBuilder()
                            .setRestartPriority(restartPriority)
                            .setMaxRestartAttempts(maxRestarts)
                            .setAntiAffinityGroup(antiAffinity == null ? "" : antiAffinity));
            if (machine != null) {
                b.setMachine(machine);
            }
            if (cpu != null) {
                if (cpu.isBlank() || cpu.equals("host")) {
                    throw new IllegalArgumentException(
                            "--cpu needs a named model (e.g. Nehalem, Westmere, Skylake-Server); host would tie the VM"
                                    + " to identical CPUs");
                }
                b.setCpuModel(cpu);
            }
            for (String d : disks) {
                b.addDisks(disk(d));
            }
            if (boot != null) {
                switch (boot) {
                    case "disk" -> {
                        if (b.getDisksCount() == 0) {
                            throw new IllegalArgumentException("--boot disk needs a --disk");
                        }
                        if (b.getDisksList().stream().noneMatch(Disk::getBoot)) {
                            b.setDisks(0, b.getDisks(0).toBuilder().setBoot(true));
                        }
                    }
                    case "kernel" -> {
                        if (kernel == null) {
                            throw new IllegalArgumentException("--boot kernel needs --kernel");
                        }
                    }
                    default -> throw new IllegalArgumentException("bad --boot '" + boot + "': use disk or kernel");
                }
            }
            long booting = b.getDisksList().stream().filter(Disk::getBoot).count();
            if (booting > 1) {
                throw new IllegalArgumentException("only one --disk may boot");
            }
            if (booting == 1 && kernel != null) {
                throw new IllegalArgumentException("boot either --kernel or a disk (--disk FILE,boot / --boot disk)");
            }
            if (kernel != null) {
                DirectBoot.Builder boot = DirectBoot.newBuilder().setKernel(absolute(kernel));
                if (initrd != null) {
                    boot.setInitrd(absolute(initrd));
                }
                if (append != null) {
                    boot.setAppend(append);
                }
                b.setBoot(boot);
            } else if (initrd != null || append != null) {
                throw new IllegalArgumentException("--initrd and --append need --kernel");
            }
            for (String n : nics) {
                b.addNics(dev.ferry.hypervisor.net.Nics.parse(n));
            }
            return b.build();
        }

        private static String absolute(String file) {
            return java.nio.file.Path.of(file).toAbsolutePath().normalize().toString();
        }

        static Disk disk(String text) {
            String[] parts = text.split(",");
            Disk.Builder d = Disk.newBuilder()
                    .setPath(absolute(parts[0]))
                    .setFormat(DiskFormat.DISK_FORMAT_RAW)
                    .setCache("none");
            for (int i = 1; i < parts.length; i++) {
                switch (parts[i]) {
                    case "format=raw" -> d.setFormat(DiskFormat.DISK_FORMAT_RAW);
                    case "format=qcow2" -> d.setFormat(DiskFormat.DISK_FORMAT_QCOW2);
                    case "ro" -> d.setReadOnly(true);
                    case "boot" -> d.setBoot(true);
                    case "cache=none", "cache=writeback", "cache=writethrough", "cache=directsync", "cache=unsafe" ->
                        d.setCache(parts[i].substring("cache=".length()));
                    default ->
                        throw new IllegalArgumentException("bad --disk option '" + parts[i]
                                + "': use format=raw, format=qcow2, ro, boot or cache=none|writeback|writethrough|"
                                + "directsync|unsafe");
                }
            }
            return d.build();
        }

        static Pattern pattern(String p) {
            return switch (p.toLowerCase(Locale.ROOT)) {
                case "random" -> Pattern.PATTERN_RANDOM;
                case "compressible" -> Pattern.PATTERN_COMPRESSIBLE;
                case "sparse" -> Pattern.PATTERN_SPARSE;
                default ->
                    throw new IllegalArgumentException("bad --pattern '" + p + "': use random, compressible or sparse");
            };
        }
    }

    static String state(VmState s) {
        return s.name().replace("VM_STATE_", "").toLowerCase(Locale.ROOT).replace('_', '-');
    }

    static String desired(DesiredState d) {
        return d.name().replace("DESIRED_STATE_", "").toLowerCase(Locale.ROOT);
    }

    static String phase(VmPhase p) {
        return p.name().replace("VM_PHASE_", "").toLowerCase(Locale.ROOT);
    }

    /** One VM as --json shows it: host is the owner the cluster names, at epoch. */
    static Map<String, Object> row(VmView v) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("name", v.getSpec().getName());
        r.put("host", v.getOwner());
        r.put("state", state(v.getState()));
        r.put("epoch", v.getEpoch());
        r.put("desired", desired(v.getDesired()));
        r.put("phase", phase(v.getPhase()));
        r.put("hostAlive", v.getOwnerAlive());
        r.put("memoryBytes", v.getSpec().getMemoryBytes());
        r.put("vcpus", v.getSpec().getVcpus());
        if (!v.getSpec().getMachine().isEmpty()) {
            r.put("machine", v.getSpec().getMachine());
        }
        if (!v.getSpec().getCpuModel().isEmpty()) {
            r.put("cpuModel", v.getSpec().getCpuModel());
        }
        r.put("heartbeat", v.getHeartbeat());
        r.put("restartAttempts", v.getRestartAttempts());
        if (v.getSpec().getHa().getRestartPriority() != 0) {
            r.put("restartPriority", v.getSpec().getHa().getRestartPriority());
        }
        if (!v.getSpec().getHa().getAntiAffinityGroup().isEmpty()) {
            r.put("antiAffinity", v.getSpec().getHa().getAntiAffinityGroup());
        }
        if (v.getSpec().getNicsCount() > 0) {
            List<Map<String, Object>> nics = new ArrayList<>();
            for (dev.ferry.proto.vm.Nic n : v.getSpec().getNicsList()) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("bridge", n.getBridge());
                m.put("mac", n.getMac());
                m.put("model", n.getModel() == dev.ferry.proto.vm.NicModel.NIC_MODEL_E1000 ? "e1000" : "virtio");
                nics.add(m);
            }
            r.put("nics", nics);
        }
        if (!v.getReason().isEmpty()) {
            r.put("reason", v.getReason());
        }
        return r;
    }

    @Command(name = "list", description = "List the cluster's VMs: owner host, epoch, state.")
    static final class ListVms implements Runnable {
        @Mixin
        ClusterOption cluster;

        @Option(names = "--json", description = "Print JSON.")
        boolean json;

        @Override
        public void run() {
            List<Map<String, Object>> rows = new ArrayList<>();
            List<String> unreachable = new ArrayList<>();
            try (CoordinatorClient c = cluster.client()) {
                for (VmView v : c.vms(true)) {
                    rows.add(row(v));
                    if (!v.getOwnerAlive() && !unreachable.contains(v.getOwner())) {
                        unreachable.add(v.getOwner());
                    }
                }
                for (dev.ferry.proto.coordinator.HostView h : c.hosts()) {
                    if (!h.getAlive() && !unreachable.contains(h.getId())) {
                        unreachable.add(h.getId());
                    }
                }
            }
            for (String h : unreachable) {
                System.err.println("ferry: warning: host " + h + " is not alive in the cluster");
            }
            if (json) {
                Map<String, Object> out = new LinkedHashMap<>();
                out.put("vms", rows);
                out.put("unreachableHosts", unreachable);
                System.out.println(Json.write(out));
                return;
            }
            System.out.printf(
                    "%-16s %-10s %-14s %-6s %-8s %-10s %-10s %s%n",
                    "NAME", "HOST", "STATE", "EPOCH", "DESIRED", "MEMORY", "HEARTBEAT", "NOTE");
            for (Map<String, Object> r : rows) {
                System.out.printf(
                        "%-16s %-10s %-14s %-6s %-8s %-10s %-10s %s%n",
                        r.get("name"),
                        r.get("host"),
                        r.get("state"),
                        r.get("epoch"),
                        r.get("desired"),
                        Sizes.format((Long) r.get("memoryBytes")),
                        r.get("heartbeat"),
                        r.getOrDefault("reason", ""));
            }
        }
    }

    @Command(name = "show", description = "Show one VM.")
    static final class Show implements Runnable {
        @Mixin
        ClusterOption cluster;

        @Parameters(index = "0", paramLabel = "NAME")
        String name;

        @Option(names = "--json", description = "Print JSON.")
        boolean json;

        @Override
        public void run() {
            try (CoordinatorClient c = cluster.client()) {
                Map<String, Object> r = row(c.vm(name));
                if (json) {
                    System.out.println(Json.write(r));
                } else {
                    r.forEach((k, v) -> System.out.printf("%-16s %s%n", k, v));
                }
            }
        }
    }

    abstract static class OnVm implements Runnable {
        @Mixin
        ClusterOption cluster;

        @Parameters(index = "0", paramLabel = "NAME")
        String name;

        @Mixin
        RequestIdOption requestId;

        abstract VmView act(CoordinatorClient c, String requestId);

        abstract String verb();

        @Override
        public void run() {
            try (CoordinatorClient c = cluster.client()) {
                VmView v = act(c, requestId.id());
                System.out.println(verb() + " " + name
                        + (v.getOwner().isEmpty() ? "" : " on " + v.getOwner() + " (" + state(v.getState()) + ")"));
            }
        }
    }

    @Command(name = "start", description = "Boot a stopped VM (on its host, or wherever it fits).")
    static final class Start extends OnVm {
        @Override
        VmView act(CoordinatorClient c, String id) {
            return c.startVm(name, id);
        }

        @Override
        String verb() {
            return "started";
        }
    }

    @Command(name = "stop", description = "Power a VM off (its definition stays; the cluster no longer restarts it).")
    static final class Stop extends OnVm {
        @Override
        VmView act(CoordinatorClient c, String id) {
            return c.stopVm(name, id);
        }

        @Override
        String verb() {
            return "stopped";
        }
    }

    @Command(name = "delete", description = "Power a VM off and remove it from the cluster.")
    static final class Delete extends OnVm {
        @Override
        VmView act(CoordinatorClient c, String id) {
            return c.deleteVm(name, id);
        }

        @Override
        String verb() {
            return "deleted";
        }
    }
}
