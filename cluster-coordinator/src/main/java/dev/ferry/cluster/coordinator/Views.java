package dev.ferry.cluster.coordinator;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.policy.Placement;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.Intent;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.cluster.IntentState;
import dev.ferry.proto.cluster.Maintenance;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmPhase;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.coordinator.HostView;
import dev.ferry.proto.coordinator.MigrationView;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/** What the API shows of VMs and hosts, from the leader's picture (and, when asked, the owners' own word). */
final class Views {
    private Views() {}

    /**
     * The migrations the leader knows (MIGRATE intents: open, and ended ones still retained), of
     * {@code vm} or of every VM when empty; running first, then newest first.
     */
    static List<MigrationView> migrations(Term t, String vm) {
        List<MigrationView> out = new ArrayList<>();
        for (Versioned<Intent> v : t.view.intents().values()) {
            Intent i = v.value();
            if (i.getKind() != IntentKind.INTENT_KIND_MIGRATE || (!vm.isEmpty() && !vm.equals(i.getVm()))) {
                continue;
            }
            out.add(migration(i));
        }
        out.sort(Comparator.comparing((MigrationView m) -> !m.getState().equals("running"))
                .thenComparing(
                        Comparator.comparingLong(MigrationView::getCreatedAtMs).reversed()));
        return out;
    }

    /** Who kept a report read from ZooKeeper ({@link MigrationReports}). */
    static final String KEPT_BY_THE_CLUSTER = "the cluster (ZooKeeper)";

    /**
     * The cluster's kept record of migration {@code which}, or else (when {@code orVm}) the newest of
     * the VM so named; null when none, or when ZooKeeper cannot say (then the agents are asked).
     */
    private static dev.ferry.proto.agent.MigrationRecord keptByTheCluster(Term t, String which, boolean orVm) {
        try {
            java.util.Optional<dev.ferry.proto.agent.MigrationRecord> r = t.reports.find(which, "");
            if (r.isEmpty() && orVm) {
                r = t.reports.find("", which);
            }
            return r.orElse(null);
        } catch (Exception e) {
            org.slf4j.LoggerFactory.getLogger(Views.class)
                    .warn("cannot read the kept migration reports: {}", e.toString());
            return null;
        }
    }

    /**
     * The record of the migration {@code which} names (its id, or a VM: its running or latest
     * migration): a finished one's as the cluster kept it ({@link MigrationReports}); a running
     * one's, or one the cluster kept none of, from the agent that keeps it: the source named by the
     * migration's intent, or any live agent once the intent is gone. Without any record, what the
     * intent says (no rounds), with a note saying why.
     */
    static dev.ferry.proto.coordinator.MigrationReport report(Term t, String which) throws CoordinatorException {
        if (which.isBlank()) {
            throw new IllegalArgumentException("a migration id or a VM name is needed");
        }
        MigrationView intent = null;
        for (MigrationView m : migrations(t, "")) {
            if (m.getId().equals(which)) {
                intent = m;
                break;
            }
        }
        if (intent == null) {
            // Running first, then newest first: the VM's running or latest migration.
            intent = migrations(t, which).stream().findFirst().orElse(null);
        }
        String id = intent != null ? intent.getId() : which;
        // Asked even when the intent looks running: the leader's view of intents follows ZooKeeper
        // a moment behind, so right after `ferry migrate` returned, its intent could still read
        // running while the cluster already kept the record (MigrationReportTest then got the
        // source's copy, "kept by h1", in a full run). A kept record means the migration ended.
        dev.ferry.proto.agent.MigrationRecord kept = keptByTheCluster(t, intent != null ? id : which, intent == null);
        if (kept != null) {
            return dev.ferry.proto.coordinator.MigrationReport.newBuilder()
                    .setRecord(kept)
                    .setKeptBy(KEPT_BY_THE_CLUSTER)
                    .build();
        }
        List<String> askFirst = new ArrayList<>();
        if (intent != null && !intent.getSource().isEmpty()) {
            askFirst.add(intent.getSource());
        }
        List<String> hosts = new ArrayList<>(askFirst);
        t.view.hosts().keySet().stream()
                .sorted()
                .filter(h -> !askFirst.contains(h))
                .forEach(hosts::add);
        dev.ferry.proto.agent.MigrationRecord best = null;
        String keptBy = "";
        List<String> unreachable = new ArrayList<>();
        for (String h : hosts) {
            HostRecord host = t.hostRecord(h);
            if (host == null) {
                unreachable.add(h + " is not alive");
                continue;
            }
            dev.ferry.proto.agent.MigrationRecordsRequest.Builder q =
                    dev.ferry.proto.agent.MigrationRecordsRequest.newBuilder().setMigrationId(id);
            if (intent == null) {
                // An id nobody keeps an intent of any more, or a VM name: ask for both.
                q.setMigrationId("");
                q.setVm("");
            }
            List<dev.ferry.proto.agent.MigrationRecord> found;
            try {
                found = t.orders.migrationRecords(host, q.build());
            } catch (AgentCallException e) {
                unreachable.add(h + ": " + e.getMessage());
                continue;
            }
            for (dev.ferry.proto.agent.MigrationRecord r : found) {
                boolean match = r.getMigrationId().equals(id)
                        || (intent == null && r.getVm().equals(which));
                if (match && (best == null || r.getStartedAtMs() > best.getStartedAtMs())) {
                    best = r;
                    keptBy = h;
                }
            }
            if (best != null && intent != null) {
                break; // the id is unique: the first agent that has it has the one
            }
        }
        if (best != null) {
            return dev.ferry.proto.coordinator.MigrationReport.newBuilder()
                    .setRecord(best)
                    .setKeptBy(keptBy)
                    .build();
        }
        if (intent == null) {
            throw new CoordinatorException(
                    io.grpc.Status.Code.NOT_FOUND,
                    "no migration of a VM named " + which + " or with that id (ferry migrate list)");
        }
        String source = intent.getSource();
        String why = source.isEmpty()
                ? "it never reached a source agent"
                : unreachable.stream()
                        .filter(u -> u.startsWith(source + " ") || u.startsWith(source + ":"))
                        .findFirst()
                        .orElse(source + " keeps no record of it");
        dev.ferry.proto.agent.MigrationRecord.Builder r = dev.ferry.proto.agent.MigrationRecord.newBuilder()
                .setMigrationId(intent.getId())
                .setVm(intent.getVm())
                .setSource(source)
                .setTarget(intent.getTarget())
                .setOptions(intent.getOptions())
                .setStartedAtMs(intent.getCreatedAtMs())
                .setFinishedAtMs(intent.getFinishedAtMs());
        if (!intent.getState().equals("running")) {
            MigrationSummary s = intent.getSummary().toBuilder()
                    .setVm(intent.getVm())
                    .setMigrationId(intent.getId())
                    .build();
            if (s.getStatus() == MigrationPhase.MIGRATION_PHASE_INVALID) {
                // A refusal before any agent ran it: the intent's error is the outcome.
                s = s.toBuilder()
                        .setStatus(
                                intent.getState().equals("completed")
                                        ? MigrationPhase.MIGRATION_PHASE_COMPLETED
                                        : MigrationPhase.MIGRATION_PHASE_FAILED)
                        .setError(intent.getError())
                        .setSource(source)
                        .setTarget(intent.getTarget())
                        .build();
            }
            r.setSummary(s);
        }
        return dev.ferry.proto.coordinator.MigrationReport.newBuilder()
                .setRecord(r)
                .setNote("no rounds: " + why + "; this is the coordinator's summary")
                .build();
    }

    static MigrationView migration(Intent i) {
        String state;
        if (Intents.isOpen(i)) {
            state = "running";
        } else if (i.getState() == IntentState.INTENT_STATE_DONE) {
            state = "completed";
        } else if (i.getSummary().getStatus() == MigrationPhase.MIGRATION_PHASE_CANCELLED) {
            state = "cancelled";
        } else {
            state = "failed";
        }
        return MigrationView.newBuilder()
                .setId(i.getId())
                .setVm(i.getVm())
                .setSource(i.getSource().isEmpty() ? i.getSummary().getSource() : i.getSource())
                .setTarget(i.getHost().isEmpty() ? i.getSummary().getTarget() : i.getHost())
                .setState(state)
                .setCreatedAtMs(i.getCreatedAtMs())
                .setFinishedAtMs(i.getFinishedAtMs())
                .setSummary(i.getSummary())
                .setError(i.getError())
                .setOptions(i.getMigration())
                .build();
    }

    static VmView vm(Term t, VmRecord r, VmStatus live) {
        String name = r.getSpec().getName();
        Versioned<RunningRecord> lock = t.view.running(name);
        boolean locked = lock != null
                && lock.value().getHostId().equals(r.getOwner())
                && lock.value().getEpoch() == r.getEpoch();
        VmState state;
        if (locked) {
            state = r.getPhase() == VmPhase.VM_PHASE_MIGRATING
                    ? VmState.VM_STATE_MIGRATING_OUT
                    : VmState.VM_STATE_RUNNING;
        } else if (r.getPhase() == VmPhase.VM_PHASE_FAILED) {
            state = VmState.VM_STATE_FAILED;
        } else {
            state = VmState.VM_STATE_STOPPED;
        }
        String reason = r.getFailureReason();
        if (!locked
                && reason.isEmpty()
                && (r.getPhase() == VmPhase.VM_PHASE_RESTARTING || r.getPhase() == VmPhase.VM_PHASE_STARTING)) {
            reason = r.getPhase() == VmPhase.VM_PHASE_RESTARTING ? "restarting" : "starting";
        }
        VmView.Builder b = VmView.newBuilder()
                .setSpec(r.getSpec())
                .setOwner(r.getOwner())
                .setEpoch(r.getEpoch())
                .setDesired(r.getDesired())
                .setPhase(r.getPhase())
                .setState(state)
                .setOwnerAlive(t.view.alive(r.getOwner()))
                .setReason(reason)
                .setRestartAttempts(r.getRestartAttempts())
                .setIntentId(r.getIntentId());
        if (live != null && live.getEpoch() == r.getEpoch()) {
            b.setState(live.getState()).setHeartbeat(live.getHeartbeat());
            if (!live.getReason().isEmpty()) {
                b.setReason(live.getReason());
            }
        }
        return b.build();
    }

    /** Every VM, sorted by name; with {@code live}, one ListVms per owner host, in parallel. */
    static List<VmView> vms(Term t, boolean live) {
        Map<String, Versioned<VmRecord>> records = t.view.vms();
        Map<String, VmStatus> statuses = new HashMap<>();
        if (live) {
            Map<String, CompletableFuture<List<VmStatus>>> asks = new HashMap<>();
            for (Versioned<VmRecord> v : records.values()) {
                String owner = v.value().getOwner();
                HostRecord h = t.hostRecord(owner);
                if (h != null && !asks.containsKey(owner)) {
                    asks.put(
                            owner,
                            CompletableFuture.supplyAsync(
                                    () -> {
                                        try {
                                            return t.orders.listVms(h);
                                        } catch (AgentCallException e) {
                                            return List.of();
                                        }
                                    },
                                    t.workers));
                }
            }
            for (var e : asks.entrySet()) {
                for (VmStatus s : e.getValue().join()) {
                    Versioned<VmRecord> v = records.get(s.getSpec().getName());
                    if (v != null && v.value().getOwner().equals(e.getKey())) {
                        statuses.put(s.getSpec().getName(), s);
                    }
                }
            }
        }
        List<VmView> out = new ArrayList<>();
        for (Versioned<VmRecord> v : records.values()) {
            out.add(vm(t, v.value(), statuses.get(v.value().getSpec().getName())));
        }
        out.sort(Comparator.comparing(x -> x.getSpec().getName()));
        return out;
    }

    static VmStatus liveStatus(Term t, VmRecord r) {
        HostRecord h = t.hostRecord(r.getOwner());
        if (h == null) {
            return null;
        }
        try {
            return t.orders.getVm(h, r.getSpec().getName());
        } catch (AgentCallException e) {
            return null;
        }
    }

    static List<HostView> hosts(Term t) {
        Map<String, Versioned<HostRecord>> alive = t.view.hosts();
        Map<String, Versioned<Maintenance>> maintenance = t.view.maintenance();
        Map<String, List<String>> vms = new HashMap<>();
        for (Versioned<VmRecord> v : t.view.vms().values()) {
            vms.computeIfAbsent(v.value().getOwner(), k -> new ArrayList<>())
                    .add(v.value().getSpec().getName());
        }
        Map<String, Placement.Host> capacity = new HashMap<>();
        for (Placement.Host h : t.capacity.hosts()) {
            capacity.put(h.id(), h);
        }
        java.util.TreeSet<String> ids = new java.util.TreeSet<>(alive.keySet());
        ids.addAll(maintenance.keySet());
        ids.addAll(vms.keySet());
        ids.addAll(t.losses.hosts());
        List<HostView> out = new ArrayList<>();
        for (String id : ids) {
            HostView.Builder b = HostView.newBuilder()
                    .setId(id)
                    .setAlive(alive.containsKey(id))
                    .setMaintenance(maintenance.containsKey(id));
            Versioned<HostRecord> h = alive.get(id);
            if (h != null) {
                b.setEndpoint(h.value().getEndpoint())
                        .setMemoryBytes(h.value().getMemoryBytes())
                        .setVcpus(h.value().getVcpus())
                        .setDriver(h.value().getDriver())
                        .putAllLabels(h.value().getLabelsMap())
                        .setCertificateNotAfterMs(h.value().getCertificateNotAfterMs())
                        .setCaNotAfterMs(h.value().getCaNotAfterMs())
                        .setPrecopy(h.value().getPrecopy())
                        .setDirtyTracking(h.value().getDirtyTracking())
                        .setQemuVersion(h.value().getQemuVersion())
                        .addAllMachineTypes(h.value().getMachineTypesList())
                        .setAccelerator(h.value().getAccelerator())
                        .addAllCpuModels(h.value().getCpuModelsList())
                        .putAllMachineAliases(h.value().getMachineAliasesMap())
                        .addAllBridges(h.value().getBridgesList());
            }
            Placement.Host c = capacity.get(id);
            if (c != null) {
                b.setUsedMemoryBytes(c.usedMemoryBytes()).setUsedVcpus(c.usedVcpus());
            }
            List<String> names = vms.getOrDefault(id, List.of());
            b.addAllVms(names.stream().sorted().toList());
            Versioned<Maintenance> m = maintenance.get(id);
            if (m != null) {
                b.setMaintenanceReason(m.value().getReason());
            }
            Long lost = t.losses.lostAtMillis(id);
            if (lost != null && h == null) {
                b.setLostAtMs(lost);
            }
            out.add(b.build());
        }
        return out;
    }
}
