package dev.ferry.cluster.policy;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * Where a VM goes: a host that is alive, not in maintenance, not excluded, with the memory and
 * vCPUs free, whose hypervisor runs the VM's machine type and CPU model ({@link Compatibility}), and
 * with every bridge the VM's network cards join. Among those, a host without another VM of the same
 * anti-affinity group, if there is
 * one (the group is a preference, not a reason to leave a VM down); then the most memory left
 * after placing, then the fewest VMs, then the host id (so that the same view gives the same
 * answer).
 */
public final class Placement {
    private Placement() {}

    /** What a host offers and what is already taken on it; {@code bridges} are its Linux bridges. */
    public record Host(
            String id,
            boolean alive,
            boolean maintenance,
            long memoryBytes,
            int vcpus,
            long usedMemoryBytes,
            int usedVcpus,
            int vmCount,
            Set<String> groups,
            Compatibility.Hypervisor hypervisor,
            Set<String> bridges) {
        public Host {
            groups = Set.copyOf(groups);
            hypervisor = hypervisor == null ? Compatibility.Hypervisor.ANY : hypervisor;
            bridges = Set.copyOf(bridges == null ? Set.of() : bridges);
        }

        /** A host whose hypervisor runs anything, without bridges. */
        public Host(
                String id,
                boolean alive,
                boolean maintenance,
                long memoryBytes,
                int vcpus,
                long usedMemoryBytes,
                int usedVcpus,
                int vmCount,
                Set<String> groups) {
            this(
                    id,
                    alive,
                    maintenance,
                    memoryBytes,
                    vcpus,
                    usedMemoryBytes,
                    usedVcpus,
                    vmCount,
                    groups,
                    Compatibility.Hypervisor.ANY,
                    Set.of());
        }

        /** This host with {@code memory}, {@code vcpus} and one VM fewer taken (the VM being placed again). */
        public Host without(long memory, int vcpus) {
            return new Host(
                    id,
                    alive,
                    maintenance,
                    memoryBytes,
                    this.vcpus,
                    usedMemoryBytes - memory,
                    usedVcpus - vcpus,
                    vmCount - 1,
                    groups,
                    hypervisor,
                    bridges);
        }

        long freeMemory() {
            return memoryBytes - usedMemoryBytes;
        }

        int freeVcpus() {
            return vcpus - usedVcpus;
        }

        /** This host after {@code d} is placed on it. */
        public Host with(Demand d) {
            Set<String> g = new HashSet<>(groups);
            if (!d.group().isEmpty()) {
                g.add(d.group());
            }
            return new Host(
                    id,
                    alive,
                    maintenance,
                    memoryBytes,
                    vcpus,
                    usedMemoryBytes + d.memoryBytes(),
                    usedVcpus + d.vcpus(),
                    vmCount + 1,
                    g,
                    hypervisor,
                    bridges);
        }
    }

    /**
     * What a VM needs. {@code group} is its anti-affinity group, empty for none; {@code machine}
     * and {@code cpuModel} as in its spec (empty: QEMU's defaults); {@code bridges} the bridges its
     * network cards join.
     */
    public record Demand(
            String vm,
            long memoryBytes,
            int vcpus,
            String group,
            String machine,
            String cpuModel,
            Set<String> bridges) {
        public Demand {
            group = group == null ? "" : group;
            machine = machine == null ? "" : machine;
            cpuModel = cpuModel == null ? "" : cpuModel;
            bridges = Set.copyOf(bridges == null ? Set.of() : bridges);
        }

        public Demand(String vm, long memoryBytes, int vcpus, String group, String machine, String cpuModel) {
            this(vm, memoryBytes, vcpus, group, machine, cpuModel, Set.of());
        }

        public Demand(String vm, long memoryBytes, int vcpus, String group, Set<String> bridges) {
            this(vm, memoryBytes, vcpus, group, "", "", bridges);
        }

        public Demand(String vm, long memoryBytes, int vcpus, String group) {
            this(vm, memoryBytes, vcpus, group, "", "", Set.of());
        }
    }

    /** A decision: a host, or why there is none. */
    public sealed interface Decision permits Placed, NoHost {}

    public record Placed(String host) implements Decision {}

    public record NoHost(String reason) implements Decision {}

    public static Decision place(Demand d, Collection<Host> hosts, Set<String> exclude) {
        List<Host> fits = new ArrayList<>();
        List<String> why = new ArrayList<>();
        for (Host h : hosts.stream().sorted(Comparator.comparing(Host::id)).toList()) {
            if (exclude.contains(h.id())) {
                continue;
            }
            String runs = Compatibility.hypervisorRefusal(d.machine(), d.cpuModel(), h.hypervisor());
            if (!h.alive()) {
                why.add(h.id() + " is down");
            } else if (h.maintenance()) {
                why.add(h.id() + " is in maintenance");
            } else if (h.freeMemory() < d.memoryBytes()) {
                why.add(h.id() + " has " + mib(Math.max(0, h.freeMemory())) + " free");
            } else if (h.freeVcpus() < d.vcpus()) {
                why.add(h.id() + " has " + Math.max(0, h.freeVcpus()) + " vCPUs free");
            } else if (runs != null) {
                why.add(h.id() + ": " + runs);
            } else if (!h.bridges().containsAll(d.bridges())) {
                List<String> missing = d.bridges().stream()
                        .filter(b -> !h.bridges().contains(b))
                        .sorted()
                        .toList();
                why.add(h.id() + " has no bridge " + String.join(", ", missing));
            } else {
                fits.add(h);
            }
        }
        if (fits.isEmpty()) {
            return new NoHost("no host fits " + d.vm() + " (" + mib(d.memoryBytes()) + ", " + d.vcpus() + " vCPU"
                    + (d.vcpus() == 1 ? "" : "s") + ")"
                    + (why.isEmpty() ? ": no other host" : ": " + String.join(", ", why)));
        }
        List<Host> apart = d.group().isEmpty()
                ? fits
                : fits.stream().filter(h -> !h.groups().contains(d.group())).toList();
        List<Host> pool = apart.isEmpty() ? fits : apart;
        Host best = pool.stream()
                .min(Comparator.comparingLong((Host h) -> -(h.freeMemory() - d.memoryBytes()))
                        .thenComparingInt(Host::vmCount)
                        .thenComparing(Host::id))
                .orElseThrow();
        return new Placed(best.id());
    }

    static String mib(long bytes) {
        return String.format(Locale.ROOT, "%d MiB", bytes >> 20);
    }
}
