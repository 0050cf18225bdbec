package dev.ferry.cluster.policy;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Can a host run a VM: its hypervisor offers the VM's machine type and CPU model (every feature of
 * the model present under the host's accelerator), it has the memory and vCPUs free, and, for a
 * live migration, the transfer mode has what it needs. Placement skips hosts that fail ({@link
 * Placement#place}); {@code ferry migrate --to} refuses before anything moves, and {@code ferry
 * migrate --dry-run} prints every check ({@link #migrationChecks}).
 *
 * <p>Why it matters: QEMU under TCG starts a VM with a CPU model it cannot emulate fully (it only
 * warns and leaves the features out), and a guest that saw a feature on its first host and lost it
 * on the next one crashes on its next such instruction; a machine type a QEMU does not have cannot
 * even start the destination. Under KVM the model's features must also be in the host CPU, which is
 * why each host probes its own list.
 */
public final class Compatibility {
    private Compatibility() {}

    /**
     * The CPU model a VM gets when its creator names none. Nehalem is the x86-64-v2 baseline
     * (SSE4.2, POPCNT; no AES, AVX or x2APIC): QEMU 7.2's TCG runs it with no unavailable feature
     * (QMP {@code query-cpu-definitions}, see docs/ARCHITECTURE.md), and every x86-64 KVM host of the
     * last 15 years (Intel since Nehalem, AMD since Bulldozer) has all of its features, so any
     * supported host can take any VM with the default. Not {@code host} (a VM on it can only move
     * to identical CPUs) and not QEMU's default {@code qemu64} (x86-64-v1, which modern
     * distributions such as RHEL 9 no longer boot on).
     */
    public static final String BASELINE_CPU_MODEL = "Nehalem";

    /** The machine type of a spec that names none (QEMU's default on x86). */
    public static final String DEFAULT_MACHINE = "pc";

    /** What a sim host (or an agent too old to report) records instead of a QEMU version. */
    public static final String SIM = "sim";

    /**
     * What a host's hypervisor runs, from its registration. {@code version} "sim" (the sim
     * driver runs any spec) or empty (an agent that does not report it) skips the hypervisor checks.
     */
    public record Hypervisor(String version, String accelerator, Set<String> machineTypes, Set<String> cpuModels) {
        /** Runs anything: the sim driver, and hosts whose agent reports nothing. */
        public static final Hypervisor ANY = new Hypervisor(SIM, SIM, Set.of(), Set.of());

        public Hypervisor {
            version = version == null ? "" : version;
            accelerator = accelerator == null ? "" : accelerator;
            machineTypes = Set.copyOf(machineTypes);
            cpuModels = Set.copyOf(cpuModels);
        }

        public boolean checked() {
            return !version.isEmpty() && !version.equals(SIM);
        }

        String describe() {
            return "QEMU " + version + " (" + accelerator + ")";
        }
    }

    /** One check of a target, passed or failed, and why. */
    public record Check(String name, boolean ok, String detail) {
        @Override
        public String toString() {
            return (ok ? "pass" : "FAIL") + "  " + name + ": " + detail;
        }
    }

    /** Why {@code hv} cannot run a VM of {@code machine} and {@code cpuModel}, or null when it can. */
    public static String hypervisorRefusal(String machine, String cpuModel, Hypervisor hv) {
        for (Check c : List.of(machineCheck(machine, hv), cpuCheck(cpuModel, hv))) {
            if (!c.ok()) {
                return c.detail();
            }
        }
        return null;
    }

    /** The machine type of the spec ({@code machine}, empty meaning "pc") on {@code hv}. */
    public static Check machineCheck(String machine, Hypervisor hv) {
        String m = machine == null || machine.isEmpty() ? DEFAULT_MACHINE : machine;
        if (!hv.checked()) {
            return new Check("machine type", true, m + " (" + reported(hv) + ": not checked)");
        }
        if (hv.machineTypes().contains(m)) {
            return new Check("machine type", true, hv.describe() + " has " + m);
        }
        return new Check("machine type", false, hv.describe() + " has no machine type " + m);
    }

    /**
     * The CPU model of the spec on {@code hv}; empty means QEMU's default {@code qemu64} (specs
     * created before CPU models were recorded). Options after the model ({@code Nehalem,+aes}) are
     * QEMU's business: the model itself must be runnable.
     */
    public static Check cpuCheck(String cpuModel, Hypervisor hv) {
        String model = cpuModel == null || cpuModel.isEmpty() ? "qemu64" : cpuModel.split(",", 2)[0];
        if (!hv.checked()) {
            return new Check("CPU model", true, model + " (" + reported(hv) + ": not checked)");
        }
        if (hv.cpuModels().contains(model)) {
            return new Check("CPU model", true, hv.describe() + " runs " + model + " with all its features");
        }
        return new Check(
                "CPU model",
                false,
                hv.describe() + " cannot run CPU model " + model + " (unknown to it, or features unavailable under "
                        + hv.accelerator() + ")");
    }

    private static String reported(Hypervisor hv) {
        return hv.version().isEmpty() ? "the host reports no hypervisor details" : "sim host";
    }

    /** What a live migration to one target needs to know about it and the source. */
    public record MigrationTarget(
            String host,
            boolean alive,
            boolean maintenance,
            long freeMemoryBytes,
            int freeVcpus,
            Hypervisor hypervisor,
            boolean targetPrecopy) {}

    /**
     * Every check of a live migration of a VM ({@code memoryBytes}, {@code vcpus}, {@code machine},
     * {@code cpuModel}) to {@code t}, in the order {@code ferry migrate --dry-run} prints them.
     * {@code precopy} says whether the migration uses Ferry's pre-copy (else QEMU's own stream), and
     * {@code sourcePrecopy} whether the source host can track the guest's writes.
     */
    public static List<Check> migrationChecks(
            long memoryBytes,
            int vcpus,
            String machine,
            String cpuModel,
            MigrationTarget t,
            boolean precopy,
            boolean sourcePrecopy,
            String sourceDirtyTracking) {
        List<Check> out = new ArrayList<>();
        out.add(new Check(
                "target alive",
                t.alive(),
                t.alive() ? t.host() + " is alive in the cluster" : t.host() + " is not alive in the cluster"));
        out.add(new Check(
                "not in maintenance",
                !t.maintenance(),
                t.maintenance() ? t.host() + " is in maintenance" : t.host() + " takes new VMs"));
        out.add(new Check(
                "memory",
                t.freeMemoryBytes() >= memoryBytes,
                t.host() + " has " + mib(Math.max(0, t.freeMemoryBytes())) + " free, the VM needs "
                        + mib(memoryBytes)));
        out.add(new Check(
                "vCPUs",
                t.freeVcpus() >= vcpus,
                t.host() + " has " + Math.max(0, t.freeVcpus()) + " vCPUs free, the VM needs " + vcpus));
        out.add(machineCheck(machine, t.hypervisor()));
        out.add(cpuCheck(cpuModel, t.hypervisor()));
        if (precopy) {
            out.add(new Check(
                    "dirty tracking",
                    sourcePrecopy,
                    sourcePrecopy
                            ? "the source tracks guest writes (pre-copy)"
                                    + (t.targetPrecopy()
                                            ? ""
                                            : "; " + t.host() + " cannot, so the VM could only leave"
                                                    + " it again with --mode qemu-native")
                            : "the source cannot track guest writes for pre-copy (" + sourceDirtyTracking
                                    + "); use --mode qemu-native where that is safe"));
        } else {
            out.add(new Check("dirty tracking", true, "not needed: --mode qemu-native uses QEMU's own tracking"));
        }
        return out;
    }

    /** The failed checks as one reason, or null when all passed. */
    public static String refusal(Collection<Check> checks) {
        List<String> failed =
                checks.stream().filter(c -> !c.ok()).map(Check::detail).toList();
        return failed.isEmpty() ? null : String.join("; ", failed);
    }

    /**
     * The machine type to record for a new VM placed on a host whose QEMU resolves aliases as
     * {@code aliases} ({@code pc} to {@code pc-i440fx-7.2}): a versioned type fixes the virtual
     * hardware (devices, their defaults, ACPI tables), while an alias means the newest type of each
     * QEMU, so a VM created as "pc" on QEMU 7.2 would get a different machine on a host with QEMU 8
     * and QEMU refuses (or corrupts) an incoming migration between them. Unknown aliases stay as
     * they are (a sim host, or a type that already is versioned).
     */
    public static String pinMachine(String machine, Map<String, String> aliases) {
        if (aliases.isEmpty()) {
            return machine == null ? "" : machine;
        }
        String m = machine == null || machine.isEmpty() ? DEFAULT_MACHINE : machine;
        return aliases.getOrDefault(m, m);
    }

    static String mib(long bytes) {
        return String.format(Locale.ROOT, "%d MiB", bytes >> 20);
    }
}
