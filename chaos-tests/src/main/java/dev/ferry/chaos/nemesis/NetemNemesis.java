package dev.ferry.chaos.nemesis;

import dev.ferry.chaos.history.History;
import dev.ferry.testkit.netns.CommandResult;
import dev.ferry.testkit.netns.NetnsHost;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/**
 * A bad link between two hosts: delay, jitter, loss, reordering, corruption and a rate cap, only
 * on the packets between them (the hosts' other traffic, ZooKeeper and the coordinators, is left
 * alone). Healing removes everything it added.
 *
 * <p>With {@code tc netem} (a prio qdisc on each end's interface steers the packets for the other
 * end into a netem band) every part applies. Kernels built without netem and prio (the machines
 * this suite runs on in CI: CONFIG_NET_SCH_NETEM and CONFIG_NET_SCH_PRIO are not set) get what
 * their kernel has: loss from an nftables rule ({@code numgen random}), and the rate cap from an
 * HTB class, whose queue also delays packets as a slow link does; fixed delay, jitter, reordering
 * and corruption are then not applied, and the history says so.
 */
public final class NetemNemesis implements Nemesis {
    private static final String TABLE = "ferry_chaos_link";

    /**
     * What the link does to each packet between the two hosts.
     *
     * @param rateKbit a cap in kbit/s, 0 for none
     */
    public record Link(
            int delayMs, int jitterMs, int lossPercent, int reorderPercent, int corruptPercent, int rateKbit) {
        String netem() {
            StringBuilder b = new StringBuilder();
            if (delayMs > 0) {
                b.append("delay ")
                        .append(delayMs)
                        .append("ms ")
                        .append(jitterMs)
                        .append("ms ");
            }
            b.append("loss ").append(lossPercent).append("% ");
            if (reorderPercent > 0 && delayMs > 0) {
                b.append("reorder ").append(reorderPercent).append("% 50% ");
            }
            b.append("corrupt ").append(corruptPercent).append("% ");
            if (rateKbit > 0) {
                b.append("rate ").append(rateKbit).append("kbit");
            }
            return b.toString().trim();
        }

        @Override
        public String toString() {
            return netem();
        }
    }

    private final History history;
    private final Set<NetnsHost> qdiscs = new LinkedHashSet<>();
    private final Set<NetnsHost> tables = new LinkedHashSet<>();

    public NetemNemesis(History history) {
        this.history = history;
    }

    @Override
    public String name() {
        return "netem";
    }

    /** Shapes the link between {@code a} and {@code b} both ways. */
    public synchronized void shape(NetnsHost a, NetnsHost b, Link link) {
        boolean netem = hasNetem(a);
        String how = netem
                ? "netem " + link.netem()
                : String.format(
                        Locale.ROOT,
                        "loss %d%% (nftables) and rate %d kbit (htb); this kernel has no netem: delay %d ms, jitter, "
                                + "reordering %d%% and corruption %d%% not applied",
                        link.lossPercent(),
                        link.rateKbit(),
                        link.delayMs(),
                        link.reorderPercent(),
                        link.corruptPercent());
        history.fault("netem", true, a.name() + " <-> " + b.name() + ": " + how);
        for (NetnsHost[] end : List.of(new NetnsHost[] {a, b}, new NetnsHost[] {b, a})) {
            if (netem) {
                netemOneWay(end[0], end[1], link);
            } else {
                approximateOneWay(end[0], end[1], link);
            }
        }
    }

    /** Whether {@code h}'s kernel has the prio and netem qdiscs (asked once per call, on its interface). */
    private static boolean hasNetem(NetnsHost h) {
        CommandResult r = h.exec("tc", "qdisc", "add", "dev", h.interfaceName(), "root", "handle", "1:", "prio");
        if (!r.ok()) {
            return false;
        }
        CommandResult n = h.exec("tc", "qdisc", "add", "dev", h.interfaceName(), "parent", "1:1", "netem");
        h.exec("tc", "qdisc", "del", "dev", h.interfaceName(), "root");
        return n.ok();
    }

    private void netemOneWay(NetnsHost from, NetnsHost to, Link link) {
        String dev = from.interfaceName();
        if (qdiscs.add(from)) {
            tc(from, "qdisc", "add", "dev", dev, "root", "handle", "1:", "prio", "bands", "4");
            List<String> q =
                    new ArrayList<>(List.of("qdisc", "add", "dev", dev, "parent", "1:4", "handle", "40:", "netem"));
            q.addAll(List.of(link.netem().split("\\s+")));
            tc(from, q.toArray(String[]::new));
        }
        classify(from, to, "1:0", "1:4");
    }

    private void approximateOneWay(NetnsHost from, NetnsHost to, Link link) {
        String dev = from.interfaceName();
        if (link.rateKbit() > 0 && qdiscs.add(from)) {
            // Unclassified traffic goes to 1:10, unlimited in practice; the link's packets to 1:20.
            tc(from, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10");
            tc(from, "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit");
            tc(
                    from,
                    "class",
                    "add",
                    "dev",
                    dev,
                    "parent",
                    "1:",
                    "classid",
                    "1:20",
                    "htb",
                    "rate",
                    link.rateKbit() + "kbit",
                    "ceil",
                    link.rateKbit() + "kbit");
            classify(from, to, "1:", "1:20");
        }
        if (link.lossPercent() > 0) {
            if (tables.add(from)) {
                nft(from, "add", "table", "inet", TABLE);
                nft(
                        from,
                        "add",
                        "chain",
                        "inet",
                        TABLE,
                        "out",
                        "{ type filter hook output priority -5 ; policy accept ; }");
            }
            nft(
                    from,
                    "add",
                    "rule",
                    "inet",
                    TABLE,
                    "out",
                    "ip",
                    "daddr",
                    to.address(),
                    "numgen",
                    "random",
                    "mod",
                    "100",
                    "<",
                    Integer.toString(link.lossPercent()),
                    "drop");
        }
    }

    private static void classify(NetnsHost from, NetnsHost to, String parent, String flow) {
        tc(
                from,
                "filter",
                "add",
                "dev",
                from.interfaceName(),
                "protocol",
                "ip",
                "parent",
                parent,
                "prio",
                "1",
                "u32",
                "match",
                "ip",
                "dst",
                to.address() + "/32",
                "flowid",
                flow);
    }

    private static void tc(NetnsHost h, String... args) {
        List<String> cmd = new ArrayList<>(List.of("tc"));
        cmd.addAll(List.of(args));
        CommandResult r = h.exec(cmd.toArray(String[]::new));
        if (!r.ok()) {
            throw new IllegalStateException("tc on " + h + ": " + r.describe());
        }
    }

    private static void nft(NetnsHost h, String... args) {
        List<String> cmd = new ArrayList<>(List.of("nft"));
        cmd.addAll(List.of(args));
        CommandResult r = h.exec(cmd.toArray(String[]::new));
        if (!r.ok()) {
            throw new IllegalStateException("nft on " + h + ": " + r.describe());
        }
    }

    @Override
    public synchronized void heal() {
        if (qdiscs.isEmpty() && tables.isEmpty()) {
            return;
        }
        Set<NetnsHost> all = new LinkedHashSet<>(qdiscs);
        all.addAll(tables);
        for (NetnsHost h : qdiscs) {
            h.exec("tc", "qdisc", "del", "dev", h.interfaceName(), "root");
        }
        for (NetnsHost h : tables) {
            h.exec("nft", "delete", "table", "inet", TABLE);
        }
        history.fault("netem", false, "removed on " + PartitionNemesis.names(all));
        qdiscs.clear();
        tables.clear();
    }
}
