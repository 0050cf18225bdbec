package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.policy.Compatibility;
import dev.ferry.cluster.policy.Placement;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.cluster.DesiredState;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.VmPhase;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.vm.VmSpec;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * What each host has free, as the placement policy sees it: a host's registered capacity minus
 * the VMs it owns that are meant to run, minus placements decided but not yet written
 * ({@link #reserve}), so that decisions taken together (a failed host's restarts, a drain's moves)
 * account for each other.
 */
final class Capacity {
    private final ClusterView view;
    private final Map<String, String> reserved = new ConcurrentHashMap<>();

    Capacity(ClusterView view) {
        this.view = view;
    }

    static boolean counts(VmRecord r) {
        return r.getDesired() == DesiredState.DESIRED_STATE_RUNNING && r.getPhase() != VmPhase.VM_PHASE_FAILED;
    }

    /** Every host that is alive or named by a record, with what it has left. */
    synchronized List<Placement.Host> hosts() {
        Map<String, Versioned<HostRecord>> alive = view.hosts();
        Map<String, long[]> used = new HashMap<>();
        Map<String, Set<String>> groups = new HashMap<>();
        Map<String, Versioned<VmRecord>> vms = view.vms();
        for (Versioned<VmRecord> v : vms.values()) {
            VmRecord r = v.value();
            String owner = reserved.getOrDefault(r.getSpec().getName(), r.getOwner());
            if (!counts(r) && !reserved.containsKey(r.getSpec().getName())) {
                continue;
            }
            add(used, groups, owner, r.getSpec());
        }
        Set<String> ids = new TreeSet<>(alive.keySet());
        ids.addAll(used.keySet());
        List<Placement.Host> out = new ArrayList<>();
        for (String id : ids) {
            Versioned<HostRecord> h = alive.get(id);
            long[] u = used.getOrDefault(id, new long[3]);
            out.add(new Placement.Host(
                    id,
                    h != null,
                    view.inMaintenance(id),
                    h == null ? 0 : h.value().getMemoryBytes(),
                    h == null ? 0 : h.value().getVcpus(),
                    u[0],
                    (int) u[1],
                    (int) u[2],
                    groups.getOrDefault(id, Set.of()),
                    h == null ? null : hypervisor(h.value()),
                    h == null ? Set.of() : Set.copyOf(h.value().getBridgesList())));
        }
        return out;
    }

    /** What a host's registration says its hypervisor runs. */
    static Compatibility.Hypervisor hypervisor(HostRecord r) {
        return new Compatibility.Hypervisor(
                r.getQemuVersion(),
                r.getAccelerator(),
                Set.copyOf(r.getMachineTypesList()),
                Set.copyOf(r.getCpuModelsList()));
    }

    private static void add(Map<String, long[]> used, Map<String, Set<String>> groups, String host, VmSpec spec) {
        long[] u = used.computeIfAbsent(host, k -> new long[3]);
        u[0] += spec.getMemoryBytes();
        u[1] += Math.max(1, spec.getVcpus());
        u[2] += 1;
        String g = spec.getHa().getAntiAffinityGroup();
        if (!g.isEmpty()) {
            groups.computeIfAbsent(host, k -> new HashSet<>()).add(g);
        }
    }

    /** The hosts as they would be without {@code vm} (to check whether it still fits where it is). */
    synchronized List<Placement.Host> hostsWithout(String vm) {
        Versioned<VmRecord> v = view.vm(vm);
        List<Placement.Host> all = hosts();
        if (v == null || !counts(v.value())) {
            return all;
        }
        String owner = reserved.getOrDefault(vm, v.value().getOwner());
        VmSpec s = v.value().getSpec();
        List<Placement.Host> out = new ArrayList<>();
        for (Placement.Host h : all) {
            if (h.id().equals(owner)) {
                out.add(h.without(s.getMemoryBytes(), Math.max(1, s.getVcpus())));
            } else {
                out.add(h);
            }
        }
        return out;
    }

    /** The hosts as they would be without the VMs {@code vms} (the ones being placed again). */
    synchronized List<Placement.Host> hostsExcept(Set<String> vms) {
        List<Placement.Host> out = hosts();
        for (String vm : vms) {
            Versioned<VmRecord> v = view.vm(vm);
            if (v == null || !counts(v.value()) || reserved.containsKey(vm)) {
                continue;
            }
            VmSpec s = v.value().getSpec();
            String owner = v.value().getOwner();
            out = out.stream()
                    .map(h -> !h.id().equals(owner) ? h : h.without(s.getMemoryBytes(), Math.max(1, s.getVcpus())))
                    .toList();
        }
        return out;
    }

    /** Holds {@code host} for {@code vm} until {@link #settle}. */
    void reserve(String vm, String host) {
        reserved.put(vm, host);
    }

    static Placement.Demand demand(VmSpec spec) {
        return new Placement.Demand(
                spec.getName(),
                spec.getMemoryBytes(),
                Math.max(1, spec.getVcpus()),
                spec.getHa().getAntiAffinityGroup(),
                spec.getMachine(),
                spec.getCpuModel(),
                dev.ferry.hypervisor.net.Nics.bridges(spec));
    }

    /** Places {@code spec} now and reserves the host for it until {@link #settle}. */
    synchronized Placement.Decision placeAndReserve(VmSpec spec, Set<String> exclude) {
        Placement.Decision d = Placement.place(demand(spec), hostsWithout(spec.getName()), exclude);
        if (d instanceof Placement.Placed p) {
            reserved.put(spec.getName(), p.host());
        }
        return d;
    }

    /** Checks that {@code spec} fits on {@code host}, reserving it if so; returns why not, or null. */
    synchronized String fitOn(VmSpec spec, String host) {
        List<Placement.Host> only = hostsWithout(spec.getName()).stream()
                .filter(h -> h.id().equals(host))
                .toList();
        if (only.isEmpty() || !only.getFirst().alive()) {
            // The picture may not have a host that joined a moment ago: ZooKeeper has the last word.
            HostRecord r = view.hostRecord(host);
            if (r == null) {
                return host + " is not alive in the cluster";
            }
            Placement.Host known = only.isEmpty() ? null : only.getFirst();
            only = List.of(new Placement.Host(
                    host,
                    true,
                    view.inMaintenance(host),
                    r.getMemoryBytes(),
                    r.getVcpus(),
                    known == null ? 0 : known.usedMemoryBytes(),
                    known == null ? 0 : known.usedVcpus(),
                    known == null ? 0 : known.vmCount(),
                    known == null ? Set.of() : known.groups(),
                    hypervisor(r),
                    Set.copyOf(r.getBridgesList())));
        }
        Placement.Decision d = Placement.place(demand(spec), only, Set.of());
        if (d instanceof Placement.NoHost n) {
            return n.reason();
        }
        reserved.put(spec.getName(), host);
        return null;
    }

    /** The placement of {@code vm} is written (or abandoned): the records speak for it now. */
    void settle(String vm) {
        reserved.remove(vm);
    }
}
