package dev.ferry.hypervisor.qemu;

import dev.ferry.hypervisor.HostCapabilities;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.HypervisorProfile;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.hypervisor.memory.RamFile;
import dev.ferry.hypervisor.net.Nics;
import dev.ferry.hypervisor.net.Taps;
import dev.ferry.hypervisor.qemu.dirty.KernelProbe;
import dev.ferry.hypervisor.storage.StorageRefusedException;
import dev.ferry.hypervisor.storage.StorageRoots;
import dev.ferry.proto.vm.Disk;
import dev.ferry.proto.vm.DiskFormat;
import dev.ferry.proto.vm.Nic;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Locale;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Real VMs under QEMU: one qemu-system process per VM, guest RAM in a shared file on tmpfs, QMP
 * on a private socket, the dirty-tracking hook preloaded when this host's kernel supports it.
 *
 * <p>Guests boot either the Ferry test guest (from the jar, with the spec's workload on its
 * command line) or a kernel given in the spec; disks are attached as virtio drives and must be on
 * storage every host can reach. A spec's kernel, initrd and disks must be regular files under one
 * of the {@link StorageRoots}: a spec comes from whoever may create a VM or prepare a migration,
 * and must not hand a guest {@code /dev/sda} or any other file of the host.
 */
public final class QemuDriver implements HypervisorDriver {
    private static final Logger log = LoggerFactory.getLogger(QemuDriver.class);
    private static final java.util.regex.Pattern MACHINE = java.util.regex.Pattern.compile("[A-Za-z0-9._-]+");

    /**
     * @param binary qemu-system-x86_64 (a path, or a name looked up on PATH)
     * @param accel AUTO uses KVM where /dev/kvm opens and is hardware-backed, TCG otherwise
     * @param startTimeout from launch to QMP ready
     * @param qmpTimeout for each QMP command
     * @param storageRoots where a spec's kernel, initrd and disks may be (the test guest, which
     *     the driver installs itself, needs none)
     * @param allowLossyNativeMigration let {@code --mode qemu-native} run where QEMU is known to
     *     lose guest writes ({@link NativeMigrationSafety}); only for tests of the tunnel itself on
     *     hosts that have nothing else, never set by the agent
     * @param announce how a guest that arrives here by migration is announced on its network
     */
    public record Settings(
            Path binary,
            Accel accel,
            Duration startTimeout,
            Duration qmpTimeout,
            StorageRoots storageRoots,
            boolean allowLossyNativeMigration,
            Announce announce) {
        /** Roots: {@link StorageRoots#SYSTEM} only. */
        public static Settings defaults() {
            return new Settings(
                    QemuCommand.DEFAULT_BINARY,
                    Accel.AUTO,
                    Duration.ofSeconds(30),
                    Duration.ofSeconds(10),
                    StorageRoots.of(StorageRoots.SYSTEM),
                    false,
                    Announce.DEFAULT);
        }

        public Settings withStorageRoots(StorageRoots roots) {
            return new Settings(binary, accel, startTimeout, qmpTimeout, roots, allowLossyNativeMigration, announce);
        }

        /** Another QEMU binary (a host with several QEMU builds; a different QEMU in tests). */
        public Settings withBinary(Path qemu) {
            return new Settings(
                    qemu, accel, startTimeout, qmpTimeout, storageRoots, allowLossyNativeMigration, announce);
        }

        public Settings withQmpTimeout(Duration timeout) {
            return new Settings(
                    binary, accel, startTimeout, timeout, storageRoots, allowLossyNativeMigration, announce);
        }

        /** Tests of the qemu-native tunnel only: see {@code allowLossyNativeMigration}. */
        public Settings withLossyNativeMigrationAllowed() {
            return new Settings(binary, accel, startTimeout, qmpTimeout, storageRoots, true, announce);
        }

        public Settings withAnnounce(Announce a) {
            return new Settings(binary, accel, startTimeout, qmpTimeout, storageRoots, allowLossyNativeMigration, a);
        }
    }

    /**
     * QEMU's {@code announce-self} after a migrated guest resumes here: {@code rounds} RARP
     * broadcasts (or, for a virtio-net guest that supports it, gratuitous ARPs from the guest) from
     * each card, the first {@code initial} after the command, then {@code step} more apart each
     * time, at most {@code max} apart; switches and bridges then forward the guest's traffic to
     * this host at once instead of after their forwarding entry ages out. Rounds 0: no
     * announcement. The defaults are QEMU's own (50, 550, 5, 100 ms).
     */
    public record Announce(Duration initial, Duration max, int rounds, Duration step) {
        public static final Announce DEFAULT =
                new Announce(Duration.ofMillis(50), Duration.ofMillis(550), 5, Duration.ofMillis(100));

        public Announce {
            if (rounds < 0 || rounds > 1000) {
                throw new IllegalArgumentException("announce rounds must be 0..1000, got " + rounds);
            }
            for (Duration d : new Duration[] {initial, max, step}) {
                if (d.isNegative() || d.toMillis() > 100_000) {
                    throw new IllegalArgumentException("announce times must be 0..100000 ms, got " + d.toMillis());
                }
            }
            if (max.compareTo(initial) < 0) {
                throw new IllegalArgumentException(
                        "announce max " + max.toMillis() + " ms is below initial " + initial.toMillis() + " ms");
            }
        }
    }

    private static final java.util.regex.Pattern CPU_MODEL =
            java.util.regex.Pattern.compile("[A-Za-z0-9._-]+(,[A-Za-z0-9._+=-]+)*");
    private static final java.util.Set<String> CACHE_MODES =
            java.util.Set.of("none", "writeback", "writethrough", "directsync", "unsafe");

    private final Settings settings;
    private final NativeArtifacts natives;
    private final KernelProbe.Result probe;
    /** What this QEMU runs, probed on first use and kept (QEMU does not change under a running agent). */
    private volatile HypervisorProfile profile;

    private QemuDriver(Settings settings, NativeArtifacts natives, KernelProbe.Result probe) {
        this.settings = settings;
        this.natives = natives;
        this.probe = probe;
    }

    /**
     * Checks QEMU is installed, copies the native pieces into {@code nativeDir}, and probes the
     * kernel for dirty tracking; says clearly what is missing.
     */
    public static QemuDriver create(Settings settings, Path nativeDir) throws HypervisorException {
        if (!onPath(settings.binary())) {
            throw new HypervisorException(
                    "start qemu driver",
                    settings.binary() + " not found; install QEMU (Debian: apt-get install -y qemu-system-x86)");
        }
        NativeArtifacts natives;
        try {
            natives = NativeArtifacts.extract(nativeDir);
        } catch (IOException e) {
            throw new HypervisorException(
                    "start qemu driver", "cannot install the native hook and test guest: " + e.getMessage(), e);
        }
        KernelProbe.Result probe = KernelProbe.probe();
        if (!probe.present()) {
            log.warn(
                    "this kernel cannot track guest writes for Ferry's pre-copy: {}; only --mode qemu-native migrations "
                            + "will work",
                    probe.detail());
        }
        log.info(
                "VM kernels, initrds and disks only from the storage roots {}",
                settings.storageRoots().describe());
        for (Path absent : settings.storageRoots().absent()) {
            log.info("storage root {} does not exist (yet): it admits nothing until it is a directory", absent);
        }
        if (!ProcessLauncher.diesWithAgent()) {
            log.warn("setpriv not found: QEMU processes will outlive this agent if it is killed");
        }
        return new QemuDriver(settings, natives, probe);
    }

    private static boolean onPath(Path binary) {
        if (binary.isAbsolute() || binary.getNameCount() > 1) {
            return Files.isExecutable(binary);
        }
        String path = System.getenv("PATH");
        for (String dir : (path == null ? "/usr/bin:/bin" : path).split(":")) {
            if (Files.isExecutable(Path.of(dir, binary.toString()))) {
                return true;
            }
        }
        return false;
    }

    Settings settings() {
        return settings;
    }

    @Override
    public String name() {
        return "qemu";
    }

    @Override
    public HostCapabilities capabilities() {
        return new HostCapabilities(probe.present(), probe.detail(), true);
    }

    /**
     * Probes this QEMU once ({@link QemuProbe}) under the accelerator its VMs get; later calls
     * return the same answer.
     */
    @Override
    public HypervisorProfile profile() throws HypervisorException {
        HypervisorProfile p = profile;
        if (p == null) {
            synchronized (this) {
                p = profile;
                if (p == null) {
                    Accel accel =
                            settings.accel() == Accel.AUTO ? Accel.detect().accel() : settings.accel();
                    p = QemuProbe.probe(settings.binary(), accel, settings.startTimeout());
                    log.info(
                            "QEMU {} ({}): {} machine types, CPU models without missing features: {}",
                            p.version(),
                            p.accelerator(),
                            p.machineTypes().size(),
                            p.cpuModels());
                    profile = p;
                }
            }
        }
        return p;
    }

    @Override
    public void validate(VmSpec spec) throws HypervisorException {
        long mem = spec.getMemoryBytes();
        if (mem < (16L << 20) || mem % (1L << 20) != 0) {
            throw new HypervisorException(
                    "validate", "QEMU guests need at least 16 MiB, in whole MiB; got " + mem + " bytes");
        }
        if (spec.getVcpus() > 64) {
            throw new HypervisorException("validate", "at most 64 vCPUs, got " + spec.getVcpus());
        }
        if (!spec.getMachine().isEmpty() && !MACHINE.matcher(spec.getMachine()).matches()) {
            throw new HypervisorException("validate", "bad machine type '" + spec.getMachine() + "'");
        }
        if (!spec.getCpuModel().isEmpty()
                && !CPU_MODEL.matcher(spec.getCpuModel()).matches()) {
            throw new HypervisorException("validate", "bad CPU model '" + spec.getCpuModel() + "'");
        }
        long booting = spec.getDisksList().stream().filter(Disk::getBoot).count();
        if (booting > 1) {
            throw new HypervisorException("validate", "at most one disk boots, " + booting + " say boot");
        }
        if (booting == 1 && spec.hasBoot() && !spec.getBoot().getKernel().isEmpty()) {
            throw new HypervisorException(
                    "validate", "a VM boots either a kernel or a disk, not both (--kernel and --disk FILE,boot)");
        }
        for (Disk d : spec.getDisksList()) {
            if (!d.getCache().isEmpty() && !CACHE_MODES.contains(d.getCache())) {
                throw new HypervisorException(
                        "validate", "unknown cache mode '" + d.getCache() + "' of disk " + d.getPath());
            }
        }
        checkRunnable(spec);
        Optional<String> nics = Nics.problem(spec);
        if (nics.isPresent()) {
            throw new HypervisorException("validate", nics.get());
        }
        checkFiles(spec, "validate");
    }

    /**
     * This QEMU runs the spec's machine type and CPU model (with all its features): the cluster
     * checks the same before placing the VM here, and this is the host's own word on it. Probes
     * QEMU only for specs that name a CPU model or a machine other than {@code pc}.
     */
    private void checkRunnable(VmSpec spec) throws HypervisorException {
        String machine = spec.getMachine();
        boolean plain = machine.isEmpty() || machine.equals("pc");
        if (spec.getCpuModel().isEmpty() && plain) {
            return;
        }
        HypervisorProfile p = profile();
        if (!plain && !p.machineTypes().contains(machine)) {
            throw new HypervisorException(
                    "validate", "QEMU " + p.version() + " on this host has no machine type '" + machine + "'");
        }
        String model = spec.getCpuModel().split(",", 2)[0];
        if (!model.isEmpty() && !p.cpuModels().contains(model)) {
            throw new HypervisorException(
                    "validate",
                    "QEMU " + p.version() + " (" + p.accelerator() + ") on this host cannot run CPU model '" + model
                            + "' with all its features");
        }
    }

    /**
     * Every file of {@code spec} QEMU would open is in a storage root; at validation, and again
     * just before QEMU starts, since a file or a symlink in a root can change in between (a
     * created VM may be started much later).
     */
    void checkFiles(VmSpec spec, String step) throws HypervisorException {
        StorageRoots roots = settings.storageRoots();
        try {
            if (spec.hasBoot() && !spec.getBoot().getKernel().isEmpty()) {
                roots.check("kernel", spec.getBoot().getKernel());
                if (!spec.getBoot().getInitrd().isEmpty()) {
                    roots.check("initrd", spec.getBoot().getInitrd());
                }
            }
            for (Disk d : spec.getDisksList()) {
                roots.check("disk", d.getPath());
            }
        } catch (StorageRefusedException e) {
            throw new HypervisorException(step, e.getMessage(), e);
        }
    }

    @Override
    public VmInstance create(VmSpec spec, VmPaths paths) throws HypervisorException {
        validate(spec);
        Taps.requireBridges(Nics.bridges(spec), "create VM " + spec.getName());
        RamFile ram = RamFile.create(paths.ramFile(), spec.getMemoryBytes());
        return new QemuVm(spec, command(spec, paths, false), ram, this, false);
    }

    @Override
    public java.util.Optional<VmInstance> adopt(VmSpec spec, VmPaths paths) throws HypervisorException {
        QemuCommand command = command(spec, paths, false);
        java.util.Optional<QemuProcess> p = QemuProcess.adopt(command, settings.startTimeout());
        if (p.isEmpty()) {
            return java.util.Optional.empty();
        }
        RamFile ram;
        try {
            ram = RamFile.open(paths.ramFile(), spec.getMemoryBytes());
        } catch (HypervisorException e) {
            p.get().detach();
            throw e;
        }
        QemuVm vm = new QemuVm(spec, command, ram, this, false);
        vm.adopted(p.get());
        return java.util.Optional.of(vm);
    }

    @Override
    public void discardLeftover(VmPaths paths) {
        java.util.Set<ProcessHandle> leftovers = new java.util.LinkedHashSet<>();
        QemuProcess.recorded(paths.runDir().resolve("qemu.pid")).ifPresent(leftovers::add);
        leftovers.addAll(QemuProcess.runningUnder(paths.runDir()));
        leftovers.forEach(h -> {
            log.warn("killing QEMU pid {} left by an earlier agent in {}", h.pid(), paths.runDir());
            // SIGKILL: it may be stopped by its lease, and nothing of it may run again.
            h.destroyForcibly();
            try {
                h.onExit().get(10, java.util.concurrent.TimeUnit.SECONDS);
            } catch (Exception e) {
                log.error("QEMU pid {} did not end: {}", h.pid(), e.toString());
            }
        });
    }

    @Override
    public VmInstance prepareIncoming(VmSpec spec, VmPaths paths, IncomingKind kind) throws HypervisorException {
        validate(spec);
        // Before the RAM file and QEMU: a host without the VM's bridges refuses the migration at once.
        Taps.requireBridges(Nics.bridges(spec), "prepare incoming " + spec.getName());
        RamFile ram = RamFile.create(paths.ramFile(), spec.getMemoryBytes());
        QemuVm vm = new QemuVm(spec, command(spec, paths, true), ram, this, true);
        try {
            vm.launch();
        } catch (HypervisorException | RuntimeException e) {
            vm.close();
            throw e;
        }
        return vm;
    }

    /**
     * The command line of a VM; source and destination of a migration get the same one, but
     * -incoming. Public so that `ferry bench qemu` starts its QEMU-native baseline exactly as the
     * driver starts Ferry's guests.
     */
    public QemuCommand command(VmSpec spec, VmPaths paths, boolean incoming) {
        QemuCommand.Builder b = QemuCommand.builder()
                .binary(settings.binary())
                .name(spec.getName())
                .machine(spec.getMachine().isEmpty() ? "pc" : spec.getMachine())
                .memoryBytes(spec.getMemoryBytes())
                .ramFile(paths.ramFile())
                .vcpus(Math.max(1, spec.getVcpus()))
                .accel(settings.accel())
                .runDir(paths.runDir())
                .incoming(incoming)
                .startPaused(incoming);
        if (paths.leaseFile() != null) {
            b.lease(paths.leaseFile(), natives.hookLibrary());
        }
        if (probe.present()) {
            // Destinations too: a VM that arrives here may leave again, and only a hook loaded at
            // QEMU's start can track its writes.
            b.hookLibrary(natives.hookLibrary());
        }
        if (!spec.getCpuModel().isEmpty()) {
            b.cpuModel(spec.getCpuModel());
        }
        // A disk marked boot is booted by the firmware (SeaBIOS, QEMU's default for pc and q35):
        // no kernel then, not even the test guest.
        boolean diskBoot = spec.getDisksList().stream().anyMatch(Disk::getBoot);
        if (!diskBoot && spec.hasBoot() && !spec.getBoot().getKernel().isEmpty()) {
            b.kernel(Path.of(spec.getBoot().getKernel()));
            if (!spec.getBoot().getInitrd().isEmpty()) {
                b.initrd(Path.of(spec.getBoot().getInitrd()));
            }
            if (!spec.getBoot().getAppend().isEmpty()) {
                b.append(spec.getBoot().getAppend());
            }
        } else if (!diskBoot) {
            b.kernel(natives.testGuest()).append(testGuestCommandLine(spec.getWorkload()));
        }
        for (Nic n : spec.getNicsList()) {
            b.nic(new QemuCommand.Nic(Nics.tapName(n), n.getMac(), Nics.qemuDevice(n.getModel())));
        }
        for (Disk d : spec.getDisksList()) {
            b.disk(new QemuCommand.Disk(
                    Path.of(d.getPath()),
                    d.getFormat() == DiskFormat.DISK_FORMAT_QCOW2
                            ? QemuCommand.Disk.Format.QCOW2
                            : QemuCommand.Disk.Format.RAW,
                    d.getReadOnly(),
                    d.getCache().isEmpty() ? "none" : d.getCache(),
                    d.getBoot()));
        }
        return b.build();
    }

    /** The test guest's parameters (see src/main/native/README.md). */
    static String testGuestCommandLine(Workload w) {
        StringBuilder s = new StringBuilder();
        if (w.getWorkingSetBytes() > 0) {
            s.append("ws=").append(w.getWorkingSetBytes() >> 10).append("K ");
        }
        s.append("rate=").append(w.getDirtyRatePagesPerSec());
        Pattern p = w.getPattern() == Pattern.PATTERN_INVALID ? Pattern.PATTERN_RANDOM : w.getPattern();
        s.append(" pattern=").append(p.name().replace("PATTERN_", "").toLowerCase(Locale.ROOT));
        if (w.getHotSetBytes() > 0 && w.getHotPercent() > 0) {
            s.append(" hot=")
                    .append(w.getHotSetBytes() >> 10)
                    .append("K hotpct=")
                    .append(w.getHotPercent());
        }
        s.append(" hb=500");
        return s.toString();
    }

    @Override
    public void close() {}
}
