package dev.ferry.chaos.nemesis;

import dev.ferry.chaos.history.History;
import dev.ferry.testkit.netns.CommandResult;
import dev.ferry.testkit.netns.NetnsHost;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Delay, loss, reordering and corruption on one link, with {@code tc netem}: on each end's
 * interface a prio qdisc steers only the packets for the other end into a netem band, so the
 * hosts' other traffic (ZooKeeper, the coordinators) is left alone. Healing removes the qdiscs.
 */
public final class NetemNemesis implements Nemesis {
    private final History history;
    private final Set<NetnsHost> touched = new LinkedHashSet<>();

    public NetemNemesis(History history) {
        this.history = history;
    }

    @Override
    public String name() {
        return "netem";
    }

    /**
     * Shapes the link between {@code a} and {@code b} both ways.
     *
     * @param netem netem's arguments, e.g. {@code delay 40ms 10ms loss 2% reorder 25% 50% corrupt 0.5%}
     */
    public synchronized void shape(NetnsHost a, NetnsHost b, String netem) {
        history.fault("netem", true, a.name() + " <-> " + b.name() + ": " + netem);
        shapeOneWay(a, b, netem);
        shapeOneWay(b, a, netem);
    }

    private void shapeOneWay(NetnsHost from, NetnsHost to, String netem) {
        String dev = from.interfaceName();
        if (touched.add(from)) {
            tc(from, "qdisc", "add", "dev", dev, "root", "handle", "1:", "prio", "bands", "4");
            List<String> q =
                    new ArrayList<>(List.of("qdisc", "add", "dev", dev, "parent", "1:4", "handle", "40:", "netem"));
            q.addAll(List.of(netem.trim().split("\\s+")));
            tc(from, q.toArray(String[]::new));
        }
        tc(
                from,
                "filter",
                "add",
                "dev",
                dev,
                "protocol",
                "ip",
                "parent",
                "1:0",
                "prio",
                "1",
                "u32",
                "match",
                "ip",
                "dst",
                to.address() + "/32",
                "flowid",
                "1:4");
    }

    private static void tc(NetnsHost h, String... args) {
        List<String> cmd = new ArrayList<>(List.of("tc"));
        cmd.addAll(List.of(args));
        CommandResult r = h.exec(cmd.toArray(String[]::new));
        if (!r.ok()) {
            throw new IllegalStateException("tc on " + h + ": " + r.describe());
        }
    }

    @Override
    public synchronized void heal() {
        if (touched.isEmpty()) {
            return;
        }
        for (NetnsHost h : touched) {
            h.exec("tc", "qdisc", "del", "dev", h.interfaceName(), "root");
        }
        history.fault("netem", false, "removed on " + PartitionNemesis.names(touched));
        touched.clear();
    }
}
