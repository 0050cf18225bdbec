package dev.ferry.chaos.history;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.testkit.netns.CommandResult;
import dev.ferry.testkit.netns.NetnsCluster;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Reads every VM's record (owner, epoch, desired state, phase) as the cluster holds it in
 * ZooKeeper, through {@code ferry vm list --json} run on the control host (the coordinator answers
 * from its caches of ZooKeeper's nodes, not from the agents), and writes each as a
 * {@link Observations#RECORD}; a VM known before and missing now is written "absent".
 */
public final class Records {
    private static final ObjectMapper JSON = new ObjectMapper();
    private final NetnsCluster cluster;
    private final History history;
    private final Set<String> known = new java.util.LinkedHashSet<>();

    private final String prefix;

    /** Records of the VMs whose names start with {@code prefix} (a run's own VMs). */
    public Records(NetnsCluster cluster, History history, String prefix) {
        this.cluster = cluster;
        this.history = history;
        this.prefix = prefix;
    }

    /** Reads and records every record; retries while no coordinator answers, up to {@code timeout}. */
    public Map<String, RecordView> read(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        String last = "";
        while (true) {
            CommandResult r = cluster.cliInShell(Duration.ofSeconds(60), List.of("vm", "list", "--json"));
            if (r.ok()) {
                return record(r.stdout());
            }
            last = r.describe();
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("no VM records within " + timeout + ": " + last);
            }
            try {
                Thread.sleep(500);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
    }

    private synchronized Map<String, RecordView> record(String json) {
        Map<String, RecordView> out = new LinkedHashMap<>();
        try {
            for (JsonNode v : JSON.readTree(json).path("vms")) {
                RecordView r = new RecordView(
                        true,
                        v.path("host").asText(),
                        v.path("epoch").asLong(),
                        v.path("desired").asText().toUpperCase(Locale.ROOT),
                        v.path("state").asText().toUpperCase(Locale.ROOT));
                if (v.path("name").asText().startsWith(prefix)) {
                    out.put(v.path("name").asText(), r);
                }
            }
        } catch (java.io.IOException e) {
            throw new IllegalStateException("vm list --json printed no JSON: " + json, e);
        }
        known.addAll(out.keySet());
        for (String vm : known) {
            history.observe(
                    Observations.RECORD,
                    vm,
                    "",
                    out.getOrDefault(vm, RecordView.ABSENT).value());
        }
        return out;
    }
}
