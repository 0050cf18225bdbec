package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.store.Versioned;
import dev.ferry.metrics.CoordinatorMetrics;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmPhase;
import dev.ferry.proto.cluster.VmRecord;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * A leader term's picture of the cluster as the metrics show it, read from the term's caches at a
 * scrape (no ZooKeeper read): what a scrape costs is a pass over the cached records.
 */
final class TermView implements CoordinatorMetrics.LeaderView {
    private final Term term;

    TermView(Term term) {
        this.term = term;
    }

    @Override
    public Map<String, Integer> openIntentsByKind() {
        Map<String, Integer> out = new TreeMap<>();
        for (Versioned<Intent> i : term.view.intents().values()) {
            if (Intents.isOpen(i.value())) {
                out.merge(Intents.kindName(i.value().getKind()), 1, Integer::sum);
            }
        }
        return out;
    }

    @Override
    public Map<String, Integer> hostsByState() {
        return Map.of(
                "alive", term.view.hosts().size(),
                "maintenance", term.view.maintenance().size());
    }

    @Override
    public Map<String, Integer> vmsRunningByHost() {
        Map<String, Integer> out = new TreeMap<>();
        // Every live host has a series, 0 when it runs nothing.
        for (String host : term.view.hosts().keySet()) {
            out.put(host, 0);
        }
        for (Versioned<RunningRecord> r : term.view.running().values()) {
            out.merge(r.value().getHostId(), 1, Integer::sum);
        }
        return out;
    }

    @Override
    public Map<String, Integer> vmsByPhase() {
        Map<String, Integer> out = new TreeMap<>();
        for (VmPhase p : VmPhase.values()) {
            if (p != VmPhase.VM_PHASE_INVALID && p != VmPhase.UNRECOGNIZED) {
                out.put(phaseName(p), 0);
            }
        }
        for (Versioned<VmRecord> v : term.view.vms().values()) {
            out.merge(phaseName(v.value().getPhase()), 1, Integer::sum);
        }
        return out;
    }

    private static String phaseName(VmPhase p) {
        return p == VmPhase.UNRECOGNIZED || p == VmPhase.VM_PHASE_INVALID
                ? "unknown"
                : p.name().substring("VM_PHASE_".length()).toLowerCase(Locale.ROOT);
    }

    @Override
    public int restartsInFlight() {
        return term.slots.inFlight();
    }
}
