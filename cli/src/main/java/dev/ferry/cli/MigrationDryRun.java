package dev.ferry.cli;

import dev.ferry.cluster.policy.Compatibility;
import dev.ferry.cluster.policy.Placement;
import dev.ferry.proto.coordinator.HostView;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code ferry migrate VM --dry-run}: the checks the coordinator makes before a live migration,
 * from the same pure policies ({@link Placement}, {@link Compatibility}) over the cluster's view
 * of the VM and its hosts, printed one by one. Nothing moves. Pure: unit-tested on hand-made views.
 */
record MigrationDryRun(String vm, String source, String target, List<Compatibility.Check> checks) {
    boolean allowed() {
        return checks.stream().allMatch(Compatibility.Check::ok);
    }

    static MigrationDryRun of(VmView vm, List<HostView> hosts, String to, TransferMode mode) {
        VmSpec spec = vm.getSpec();
        String name = spec.getName();
        String owner = vm.getOwner();
        List<Compatibility.Check> checks = new ArrayList<>();
        boolean running = vm.getState() == VmState.VM_STATE_RUNNING && vm.getOwnerAlive();
        checks.add(new Compatibility.Check(
                "VM running",
                running,
                running
                        ? name + " runs on " + owner
                        : name + " is not running on a live host (state "
                                + vm.getState().name().replace("VM_STATE_", "").toLowerCase(java.util.Locale.ROOT)
                                + " on " + owner + "); only a running VM can be migrated live"));
        Map<String, HostView> byId = new LinkedHashMap<>();
        hosts.forEach(h -> byId.put(h.getId(), h));
        String target = to == null ? "" : to;
        if (target.isEmpty()) {
            List<Placement.Host> view =
                    hosts.stream().map(h -> placementHost(h, owner, spec)).toList();
            Placement.Decision d = Placement.place(demand(spec), view, Set.of(owner));
            if (d instanceof Placement.NoHost n) {
                checks.add(new Compatibility.Check("placement", false, n.reason()));
                return new MigrationDryRun(name, owner, "", checks);
            }
            target = ((Placement.Placed) d).host();
            checks.add(new Compatibility.Check("placement", true, "placement chooses " + target));
        }
        if (target.equals(owner)) {
            checks.add(new Compatibility.Check("target", false, name + " is already on " + target));
            return new MigrationDryRun(name, owner, target, checks);
        }
        HostView t = byId.get(target);
        if (t == null) {
            checks.add(new Compatibility.Check("target", false, "no host named " + target + " in the cluster"));
            return new MigrationDryRun(name, owner, target, checks);
        }
        HostView src = byId.get(owner);
        boolean precopy = mode != TransferMode.TRANSFER_MODE_HYPERVISOR_NATIVE;
        boolean sourcePrecopy =
                src == null || src.getPrecopy() || src.getDirtyTracking().isEmpty();
        checks.addAll(Compatibility.migrationChecks(
                spec.getMemoryBytes(),
                Math.max(1, spec.getVcpus()),
                spec.getMachine(),
                spec.getCpuModel(),
                new Compatibility.MigrationTarget(
                        target,
                        t.getAlive(),
                        t.getMaintenance(),
                        t.getMemoryBytes() - t.getUsedMemoryBytes(),
                        t.getVcpus() - t.getUsedVcpus(),
                        hypervisor(t),
                        t.getPrecopy()),
                precopy,
                sourcePrecopy,
                src == null ? "" : src.getDirtyTracking()));
        checks.add(bridgeCheck(spec, t));
        return new MigrationDryRun(name, owner, target, checks);
    }

    /** The bridges of the VM's network cards, which the target must have (as placement checks). */
    static Compatibility.Check bridgeCheck(VmSpec spec, HostView t) {
        Set<String> needed = dev.ferry.hypervisor.net.Nics.bridges(spec);
        java.util.List<String> missing = needed.stream()
                .filter(b -> !t.getBridgesList().contains(b))
                .sorted()
                .toList();
        return new Compatibility.Check(
                "bridges",
                missing.isEmpty(),
                needed.isEmpty()
                        ? "the VM has no network cards"
                        : missing.isEmpty()
                                ? t.getId() + " has "
                                        + String.join(
                                                ", ", needed.stream().sorted().toList())
                                : t.getId() + " has no bridge " + String.join(", ", missing));
    }

    static Compatibility.Hypervisor hypervisor(HostView h) {
        return new Compatibility.Hypervisor(
                h.getQemuVersion(),
                h.getAccelerator(),
                Set.copyOf(h.getMachineTypesList()),
                Set.copyOf(h.getCpuModelsList()));
    }

    private static Placement.Demand demand(VmSpec s) {
        return new Placement.Demand(
                s.getName(),
                s.getMemoryBytes(),
                Math.max(1, s.getVcpus()),
                s.getHa().getAntiAffinityGroup(),
                s.getMachine(),
                s.getCpuModel(),
                dev.ferry.hypervisor.net.Nics.bridges(s));
    }

    /** A host as placement sees it; the owner without this VM (its share would leave with it). */
    private static Placement.Host placementHost(HostView h, String owner, VmSpec spec) {
        boolean mine = h.getId().equals(owner);
        return new Placement.Host(
                h.getId(),
                h.getAlive(),
                h.getMaintenance(),
                h.getMemoryBytes(),
                h.getVcpus(),
                h.getUsedMemoryBytes() - (mine ? spec.getMemoryBytes() : 0),
                h.getUsedVcpus() - (mine ? Math.max(1, spec.getVcpus()) : 0),
                h.getVmsCount() - (mine ? 1 : 0),
                Set.of(),
                hypervisor(h),
                Set.copyOf(h.getBridgesList()));
    }

    void print(java.io.PrintStream out) {
        out.println("dry run: migrate " + vm + " from " + source + " to " + (target.isEmpty() ? "?" : target));
        for (Compatibility.Check c : checks) {
            out.println("  " + c);
        }
        out.println(allowed() ? "allowed: the migration would start" : "refused: " + Compatibility.refusal(checks));
    }

    Map<String, Object> json() {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("vm", vm);
        r.put("source", source);
        r.put("target", target);
        r.put("allowed", allowed());
        List<Map<String, Object>> cs = new ArrayList<>();
        for (Compatibility.Check c : checks) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("check", c.name());
            m.put("ok", c.ok());
            m.put("detail", c.detail());
            cs.add(m);
        }
        r.put("checks", cs);
        if (!allowed()) {
            r.put("reason", Compatibility.refusal(checks));
        }
        return r;
    }
}
