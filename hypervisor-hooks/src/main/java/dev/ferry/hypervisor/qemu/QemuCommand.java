package dev.ferry.hypervisor.qemu;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Everything that makes up one QEMU process for one VM, and its rendering as a command line and
 * environment. Pure: nothing here touches the host, so the rendering is unit-tested.
 *
 * <p>Guest RAM is a shared file ({@code memory-backend-file,share=on}) that the agent maps too.
 * QEMU's own files live in {@link #runDir()}: the QMP socket, the console log, QEMU's stderr and
 * the hook's status file.
 *
 * @param binary the QEMU executable (a path, or a name looked up on PATH)
 * @param name the VM's name ({@code -name guest=})
 * @param machine the machine type ({@code pc}, {@code q35}, ...)
 * @param memoryBytes guest RAM, a multiple of 1 MiB
 * @param ramFile the guest RAM file (on tmpfs), sized {@code memoryBytes}
 * @param vcpus number of virtual CPUs
 * @param accel accelerator; {@link Accel#AUTO} is resolved when the process starts
 * @param cpuModel {@code -cpu} model, or null for QEMU's default
 * @param runDir private directory (0700) for QEMU's sockets and logs
 * @param kernel direct-boot kernel, or null
 * @param initrd direct-boot initrd, or null
 * @param append kernel command line, or null
 * @param disks virtio disks, in order
 * @param nics network cards, in order, each on a tap device the agent created
 * @param incoming start as a migration destination ({@code -incoming defer})
 * @param startPaused do not start the vCPUs ({@code -S})
 * @param hookLibrary the dirty-tracking LD_PRELOAD library, or null for none
 * @param leaseFile the guest's lease ({@code FERRY_LEASE_FILE}, see {@link
 *     dev.ferry.hypervisor.lease.LeaseFile}), enforced by {@code leaseLibrary}; null for none
 * @param leaseLibrary the library that enforces the lease (the same libferryhook.so); needed
 *     with a lease file even where the kernel cannot track writes
 * @param extraArgs further arguments, appended verbatim (tests, experiments)
 */
public record QemuCommand(
        Path binary,
        String name,
        String machine,
        long memoryBytes,
        Path ramFile,
        int vcpus,
        Accel accel,
        String cpuModel,
        Path runDir,
        Path kernel,
        Path initrd,
        String append,
        List<Disk> disks,
        List<Nic> nics,
        boolean incoming,
        boolean startPaused,
        Path hookLibrary,
        Path leaseFile,
        Path leaseLibrary,
        List<String> extraArgs) {

    public static final String RAM_BACKEND_ID = "ram0";
    public static final Path DEFAULT_BINARY = Path.of("qemu-system-x86_64");
    /** sun_path of a unix socket address holds 108 bytes including the terminating NUL. */
    static final int MAX_SOCKET_PATH = 107;

    private static final Pattern MACHINE = Pattern.compile("[A-Za-z0-9._-]+");
    private static final Pattern CPU_MODEL = Pattern.compile("[A-Za-z0-9._,+=-]+");

    /**
     * A virtio disk. {@code cache} is QEMU's cache mode; {@code none} (O_DIRECT) unless told
     * otherwise. A {@code boot} disk is the firmware's first boot device ({@code bootindex=1}).
     */
    public record Disk(Path file, Format format, boolean readOnly, String cache, boolean boot) {
        /** Image formats Ferry passes to QEMU. */
        public enum Format {
            RAW,
            QCOW2
        }

        public Disk {
            Objects.requireNonNull(file, "disk file");
            Objects.requireNonNull(format, "disk format");
            cache = cache == null ? "none" : cache;
            if (!Set.of("none", "writeback", "writethrough", "directsync", "unsafe")
                    .contains(cache)) {
                throw new IllegalArgumentException("unknown QEMU cache mode " + cache);
            }
        }

        public Disk(Path file, Format format, boolean readOnly) {
            this(file, format, readOnly, "none", false);
        }

        public Disk(Path file, Format format, boolean readOnly, String cache) {
            this(file, format, readOnly, cache, false);
        }
    }

    /**
     * A network card on tap device {@code tap} (created by the agent, so QEMU runs no script),
     * with the spec's MAC; {@code device} is QEMU's model ({@code virtio-net-pci}, {@code e1000}).
     */
    public record Nic(String tap, String mac, String device) {
        private static final Pattern TAP = Pattern.compile("[A-Za-z0-9._-]{1,15}");
        private static final Pattern MAC = Pattern.compile("[0-9a-f]{2}(:[0-9a-f]{2}){5}");

        public Nic {
            if (tap == null || !TAP.matcher(tap).matches()) {
                throw new IllegalArgumentException("not a tap device name (at most 15 characters): " + tap);
            }
            if (mac == null || !MAC.matcher(mac).matches()) {
                throw new IllegalArgumentException("not a MAC: " + mac);
            }
            if (!Set.of("virtio-net-pci", "e1000").contains(device)) {
                throw new IllegalArgumentException("unknown NIC model " + device);
            }
        }
    }

    public QemuCommand {
        Objects.requireNonNull(binary, "binary");
        Objects.requireNonNull(ramFile, "ramFile");
        Objects.requireNonNull(runDir, "runDir");
        Objects.requireNonNull(accel, "accel");
        disks = List.copyOf(disks == null ? List.of() : disks);
        nics = List.copyOf(nics == null ? List.of() : nics);
        extraArgs = List.copyOf(extraArgs == null ? List.of() : extraArgs);
        machine = machine == null || machine.isEmpty() ? "pc" : machine;
        if (name == null || name.isEmpty() || name.chars().anyMatch(c -> c < 0x20 || c == 0x7f)) {
            throw new IllegalArgumentException("VM name must be non-empty without control characters: " + name);
        }
        if (!MACHINE.matcher(machine).matches()) {
            throw new IllegalArgumentException("not a QEMU machine type: " + machine);
        }
        if (cpuModel != null && !CPU_MODEL.matcher(cpuModel).matches()) {
            throw new IllegalArgumentException("not a QEMU CPU model: " + cpuModel);
        }
        if (memoryBytes <= 0 || memoryBytes % (1 << 20) != 0) {
            throw new IllegalArgumentException("guest memory must be a positive multiple of 1 MiB, got " + memoryBytes);
        }
        if (vcpus < 1) {
            throw new IllegalArgumentException("vcpus must be at least 1, got " + vcpus);
        }
        if (!ramFile.isAbsolute() || !runDir.isAbsolute()) {
            throw new IllegalArgumentException("RAM file and run directory must be absolute paths");
        }
        if (leaseFile != null && leaseLibrary == null) {
            throw new IllegalArgumentException("a lease file needs the library that enforces it");
        }
        if (disks.stream().filter(Disk::boot).count() > 1) {
            throw new IllegalArgumentException("at most one disk boots");
        }
        if (kernel != null && disks.stream().anyMatch(Disk::boot)) {
            throw new IllegalArgumentException("a VM boots either a kernel or a disk, not both");
        }
        if ((initrd != null || append != null) && kernel == null) {
            throw new IllegalArgumentException("initrd and append need a kernel");
        }
        int socketPath = runDir.resolve("qmp.sock").toString().getBytes(StandardCharsets.UTF_8).length;
        if (socketPath > MAX_SOCKET_PATH) {
            throw new IllegalArgumentException("run directory " + runDir + " is too long for a unix socket path ("
                    + socketPath + " > " + MAX_SOCKET_PATH + " bytes)");
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    public Builder toBuilder() {
        Builder b = new Builder();
        b.binary = binary;
        b.name = name;
        b.machine = machine;
        b.memoryBytes = memoryBytes;
        b.ramFile = ramFile;
        b.vcpus = vcpus;
        b.accel = accel;
        b.cpuModel = cpuModel;
        b.runDir = runDir;
        b.kernel = kernel;
        b.initrd = initrd;
        b.append = append;
        b.disks = new ArrayList<>(disks);
        b.nics = new ArrayList<>(nics);
        b.incoming = incoming;
        b.startPaused = startPaused;
        b.hookLibrary = hookLibrary;
        b.leaseFile = leaseFile;
        b.leaseLibrary = leaseLibrary;
        b.extraArgs = new ArrayList<>(extraArgs);
        return b;
    }

    public Path qmpSocket() {
        return runDir.resolve("qmp.sock");
    }

    /**
     * Everything the guest printed on its serial console (COM1), written by QEMU itself; the
     * agent's {@link dev.ferry.hypervisor.console.ConsoleHistory} reads and trims it.
     */
    public Path consoleLog() {
        return runDir.resolve(dev.ferry.hypervisor.console.ConsoleHistory.FILE);
    }

    /** COM1's input: QEMU serves it, the agent connects while a console client writes ({@link ConsolePump}). */
    public Path consoleSocket() {
        return runDir.resolve("console.sock");
    }

    /** QEMU's stdout and stderr. */
    public Path qemuLog() {
        return runDir.resolve("qemu.log");
    }

    /** Where the hook reports its registration ({@code status=ok start=... length=...}). */
    public Path hookStatusFile() {
        return runDir.resolve("hook.status");
    }

    /** The command line, with {@code accel} already resolved. */
    public List<String> argv() {
        if (accel == Accel.AUTO) {
            throw new IllegalStateException("resolve Accel.AUTO (withAccel) before rendering");
        }
        List<String> a = new ArrayList<>();
        a.add(binary.toString());
        a.addAll(List.of("-name", "guest=" + opt(name)));
        a.addAll(List.of("-machine", machine + ",memory-backend=" + RAM_BACKEND_ID));
        a.addAll(List.of("-m", (memoryBytes >> 20) + "M"));
        a.addAll(List.of(
                "-object",
                "memory-backend-file,id=" + RAM_BACKEND_ID + ",size=" + memoryBytes + ",mem-path="
                        + opt(ramFile.toString()) + ",share=on"));
        a.addAll(List.of("-smp", Integer.toString(vcpus)));
        a.addAll(List.of("-accel", accel.qemuName()));
        if (cpuModel != null) {
            a.addAll(List.of("-cpu", cpuModel));
        }
        a.addAll(List.of("-display", "none", "-nodefaults", "-no-user-config"));
        // Timestamps on QEMU's own messages, so its log lines up with the agent's.
        a.addAll(List.of("-msg", "timestamp=on"));
        // A socket for input (the agent connects while a console client writes), and QEMU's own log
        // of everything the guest prints, connected or not (ConsolePump says why).
        a.addAll(List.of(
                "-chardev",
                "socket,id=console,path=" + opt(consoleSocket().toString()) + ",server=on,wait=off,logfile="
                        + opt(consoleLog().toString()) + ",logappend=on"));
        a.addAll(List.of("-serial", "chardev:console"));
        a.addAll(List.of("-chardev", "socket,id=qmp,path=" + opt(qmpSocket().toString()) + ",server=on,wait=off"));
        a.addAll(List.of("-mon", "chardev=qmp,mode=control"));
        if (kernel != null) {
            a.addAll(List.of("-kernel", kernel.toString()));
        }
        if (initrd != null) {
            a.addAll(List.of("-initrd", initrd.toString()));
        }
        if (append != null) {
            a.addAll(List.of("-append", append));
        }
        for (int i = 0; i < disks.size(); i++) {
            Disk d = disks.get(i);
            String drive = "file=" + opt(d.file().toString()) + ",format="
                    + d.format().name().toLowerCase() + ",if=" + (d.boot() ? "none" : "virtio") + ",cache="
                    + d.cache() + ",id=disk" + i + (d.readOnly() ? ",readonly=on" : "");
            a.addAll(List.of("-drive", drive));
            if (d.boot()) {
                // if=virtio cannot carry a bootindex: the boot disk is the same virtio-blk device,
                // declared explicitly so that the firmware tries it first.
                a.addAll(List.of("-device", "virtio-blk-pci,drive=disk" + i + ",bootindex=1"));
            }
        }
        for (int i = 0; i < nics.size(); i++) {
            Nic n = nics.get(i);
            a.addAll(List.of("-netdev", "tap,id=net" + i + ",ifname=" + n.tap() + ",script=no,downscript=no"));
            // guest_announce=off: after a migration QEMU announces the guest itself (RARP from each
            // card, announce-self) instead of asking a virtio guest to (VIRTIO_NET_F_GUEST_ANNOUNCE),
            // whose driver then acknowledges on the control queue and busy-waits for QEMU's answer.
            // The suspected cause of 2 hangs in 12 migrations of GuestNetworkQemuTest (TCG): the
            // guest's kworker spun right after the resume ("soft lockup ... kworker", "rcu_preempt
            // kthread starved"); not proven. The MAC does not change, so neighbours' ARP caches stay
            // right; RARP is what switches need.
            String announce = n.device().equals("virtio-net-pci") ? ",guest_announce=off" : "";
            a.addAll(List.of("-device", n.device() + ",netdev=net" + i + ",mac=" + n.mac() + announce));
        }
        if (incoming) {
            a.addAll(List.of("-incoming", "defer"));
        }
        if (startPaused) {
            a.add("-S");
        }
        a.addAll(extraArgs);
        return List.copyOf(a);
    }

    /**
     * Environment variables to set for QEMU. With a hook library, LD_PRELOAD and the hook's two
     * variables; without one, nothing (and {@link #environmentToRemove()} clears stray ones).
     */
    public Map<String, String> environment() {
        Map<String, String> env = new LinkedHashMap<>();
        if (hookLibrary != null) {
            env.put("LD_PRELOAD", hookLibrary.toString());
            env.put("FERRY_HOOK_RAM_PATH", ramFile.toString());
            env.put("FERRY_HOOK_STATUS_FILE", hookStatusFile().toString());
        }
        if (leaseFile != null) {
            env.putIfAbsent("LD_PRELOAD", leaseLibrary.toString());
            env.put("FERRY_LEASE_FILE", leaseFile.toString());
        }
        return env;
    }

    /** Variables never inherited from the agent: the hook is on only when this command says so. */
    public List<String> environmentToRemove() {
        return List.of("LD_PRELOAD", "FERRY_HOOK_RAM_PATH", "FERRY_HOOK_STATUS_FILE", "FERRY_LEASE_FILE");
    }

    /** Where QEMU's pid and start time are kept, so that an agent restarted later finds it again. */
    public Path pidFile() {
        return runDir.resolve("qemu.pid");
    }

    /** The same command with {@code accel} set (used to resolve {@link Accel#AUTO}). */
    public QemuCommand withAccel(Accel resolved) {
        return toBuilder().accel(resolved).build();
    }

    /** A value inside QEMU's comma-separated option syntax: a comma is written twice. */
    static String opt(String value) {
        return value.replace(",", ",,");
    }

    /** Builder with QEMU's defaults for everything but the name, size, RAM file and run directory. */
    public static final class Builder {
        private Path binary = DEFAULT_BINARY;
        private String name;
        private String machine = "pc";
        private long memoryBytes;
        private Path ramFile;
        private int vcpus = 1;
        private Accel accel = Accel.AUTO;
        private String cpuModel;
        private Path runDir;
        private Path kernel;
        private Path initrd;
        private String append;
        private List<Disk> disks = new ArrayList<>();
        private List<Nic> nics = new ArrayList<>();
        private boolean incoming;
        private boolean startPaused;
        private Path hookLibrary;
        private Path leaseFile;
        private Path leaseLibrary;
        private List<String> extraArgs = new ArrayList<>();

        public Builder binary(Path v) {
            binary = v;
            return this;
        }

        public Builder name(String v) {
            name = v;
            return this;
        }

        public Builder machine(String v) {
            machine = v;
            return this;
        }

        public Builder memoryBytes(long v) {
            memoryBytes = v;
            return this;
        }

        public Builder ramFile(Path v) {
            ramFile = v;
            return this;
        }

        public Builder vcpus(int v) {
            vcpus = v;
            return this;
        }

        public Builder accel(Accel v) {
            accel = v;
            return this;
        }

        public Builder cpuModel(String v) {
            cpuModel = v;
            return this;
        }

        public Builder runDir(Path v) {
            runDir = v;
            return this;
        }

        public Builder kernel(Path v) {
            kernel = v;
            return this;
        }

        public Builder initrd(Path v) {
            initrd = v;
            return this;
        }

        public Builder append(String v) {
            append = v;
            return this;
        }

        public Builder disk(Disk v) {
            disks.add(v);
            return this;
        }

        public Builder nic(Nic v) {
            nics.add(v);
            return this;
        }

        /** Destination of a migration: {@code -incoming defer} and {@code -S}. */
        public Builder incoming(boolean v) {
            incoming = v;
            if (v) {
                startPaused = true;
            }
            return this;
        }

        public Builder startPaused(boolean v) {
            startPaused = v;
            return this;
        }

        public Builder hookLibrary(Path v) {
            hookLibrary = v;
            return this;
        }

        /** The guest stops (SIGSTOP, by the kernel) at the deadline in {@code file}, enforced by {@code library}. */
        public Builder lease(Path file, Path library) {
            leaseFile = file;
            leaseLibrary = library;
            return this;
        }

        public Builder extraArgs(String... v) {
            extraArgs.addAll(List.of(v));
            return this;
        }

        public QemuCommand build() {
            return new QemuCommand(
                    binary,
                    name,
                    machine,
                    memoryBytes,
                    ramFile,
                    vcpus,
                    accel,
                    cpuModel,
                    runDir,
                    kernel,
                    initrd,
                    append,
                    disks,
                    nics,
                    incoming,
                    startPaused,
                    hookLibrary,
                    leaseFile,
                    leaseLibrary,
                    extraArgs);
        }
    }
}
