package dev.ferry.chaos.nemesis;

import dev.ferry.chaos.history.History;
import dev.ferry.testkit.netns.CommandResult;
import dev.ferry.testkit.netns.NetnsHost;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Partitions between groups of hosts as blackholes: nftables rules inside the hosts' own
 * namespaces drop the packets (no reset, no ICMP), so a peer learns of it only by its own
 * timeouts, as when a cable or a switch port dies. Symmetric: nothing passes either way; one-way:
 * what {@code from} sends to {@code to} is dropped, the other direction passes. Healing deletes the
 * nemesis's table on every host it touched.
 */
public final class PartitionNemesis implements Nemesis {
    static final String TABLE = "ferry_chaos";
    private final History history;
    private final Set<NetnsHost> touched = new LinkedHashSet<>();

    public PartitionNemesis(History history) {
        this.history = history;
    }

    @Override
    public String name() {
        return "partition";
    }

    /** Nothing passes between any host of {@code a} and any of {@code b}, either way. */
    public synchronized void partition(Collection<NetnsHost> a, Collection<NetnsHost> b) {
        history.fault("partition", true, names(a) + " <-/-> " + names(b));
        Map<NetnsHost, List<String>> rules = new LinkedHashMap<>();
        drop(a, b, rules);
        drop(b, a, rules);
        install(rules);
    }

    /** What {@code from} sends to {@code to} is dropped (on both ends, so neither side's rules alone decide). */
    public synchronized void oneWay(Collection<NetnsHost> from, Collection<NetnsHost> to) {
        history.fault("partition", true, names(from) + " --/-> " + names(to));
        Map<NetnsHost, List<String>> rules = new LinkedHashMap<>();
        drop(from, to, rules);
        install(rules);
    }

    private static void drop(Collection<NetnsHost> from, Collection<NetnsHost> to, Map<NetnsHost, List<String>> rules) {
        for (NetnsHost f : from) {
            for (NetnsHost t : to) {
                rules.computeIfAbsent(f, x -> new ArrayList<>())
                        .addAll(List.of(";", "add", "rule", "inet", TABLE, "out", "ip", "daddr", t.address(), "drop"));
            }
        }
        for (NetnsHost t : to) {
            for (NetnsHost f : from) {
                rules.computeIfAbsent(t, x -> new ArrayList<>())
                        .addAll(List.of(";", "add", "rule", "inet", TABLE, "in", "ip", "saddr", f.address(), "drop"));
            }
        }
    }

    /**
     * One nft command per host, its table, chains (added again harmlessly when they exist) and rules
     * in one transaction: a cut meant for a switchover pause of a few hundred milliseconds must not
     * take a process start per rule (eight of them took about a second on a loaded 2-core machine,
     * and the cut of scenario 3 came after the commit).
     */
    private void install(Map<NetnsHost, List<String>> rules) {
        for (Map.Entry<NetnsHost, List<String>> e : rules.entrySet()) {
            NetnsHost h = e.getKey();
            touched.add(h);
            List<String> cmd = new ArrayList<>(List.of(
                    "add",
                    "table",
                    "inet",
                    TABLE,
                    ";",
                    "add",
                    "chain",
                    "inet",
                    TABLE,
                    "in",
                    "{ type filter hook input priority -10 ; policy accept ; }",
                    ";",
                    "add",
                    "chain",
                    "inet",
                    TABLE,
                    "out",
                    "{ type filter hook output priority -10 ; policy accept ; }"));
            cmd.addAll(e.getValue());
            run(h, cmd.toArray(String[]::new));
        }
    }

    private static void run(NetnsHost h, String... nft) {
        List<String> cmd = new ArrayList<>(List.of("nft"));
        cmd.addAll(List.of(nft));
        CommandResult r = h.exec(cmd.toArray(String[]::new));
        if (!r.ok()) {
            throw new IllegalStateException("nft on " + h + ": " + r.describe());
        }
    }

    @Override
    public synchronized void heal() {
        if (touched.isEmpty()) {
            return;
        }
        List<String> names = new ArrayList<>();
        for (NetnsHost h : touched) {
            h.exec("nft", "delete", "table", "inet", TABLE);
            names.add(h.name());
        }
        touched.clear();
        history.fault("partition", false, "healed on " + names);
    }

    static String names(Collection<NetnsHost> hosts) {
        return hosts.stream().map(NetnsHost::name).toList().toString();
    }
}
