package dev.ferry.testkit.netns;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * One "host" of a {@link NetnsCluster}: a Linux network namespace with loopback up and one veth
 * interface ({@link #interfaceName()}, {@code eth0}) whose peer ({@link #switchInterfaceName()})
 * is a port of the cluster's bridge in the switch namespace. It has one IPv4 address
 * ({@link #address()}) on the cluster's /24 and no default route: nothing it sends can leave the
 * cluster's namespaces.
 *
 * <p>Nemeses act here: {@link #exec} runs a command inside the namespace ({@code tc qdisc add dev
 * eth0 ...}, {@code nft ...}); {@link #execInSwitch} runs one in the switch namespace, where the
 * host's bridge port can be shaped or cut without touching the host's own tables.
 */
public final class NetnsHost {
    /** The host-side interface's name, the same in every namespace (namespaces keep them apart). */
    public static final String INTERFACE = "eth0";

    private final String name;
    private final String namespace;
    private final String address;
    private final String switchNamespace;
    private final String switchInterface;

    NetnsHost(String name, String namespace, String address, String switchNamespace, String switchInterface) {
        this.name = name;
        this.namespace = namespace;
        this.address = address;
        this.switchNamespace = switchNamespace;
        this.switchInterface = switchInterface;
    }

    /** The kit's name for this host: {@code zk-1}, {@code coordinator-2}, an agent's host id, {@code control}. */
    public String name() {
        return name;
    }

    /** The network namespace's name (for {@code ip netns exec}); at most 15 characters. */
    public String namespace() {
        return namespace;
    }

    /** This host's IPv4 address (without the prefix length), for example {@code 198.18.1.101}. */
    public String address() {
        return address;
    }

    /** The interface inside this host's namespace that carries its address. */
    public String interfaceName() {
        return INTERFACE;
    }

    /** The namespace holding the bridge this host is plugged into. */
    public String switchNamespace() {
        return switchNamespace;
    }

    /** This host's port on the bridge: the veth peer of {@link #interfaceName()}, in {@link #switchNamespace()}. */
    public String switchInterfaceName() {
        return switchInterface;
    }

    /** {@code ip netns exec NAMESPACE} followed by {@code command}: the prefix for anything run on this host. */
    public List<String> wrap(List<String> command) {
        List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", namespace));
        cmd.addAll(command);
        return cmd;
    }

    /** Runs {@code command} inside this host's namespace (30 s deadline); returns whatever it did. */
    public CommandResult exec(String... command) {
        return exec(Duration.ofSeconds(30), List.of(command));
    }

    /** Runs {@code command} inside this host's namespace within {@code timeout}. */
    public CommandResult exec(Duration timeout, List<String> command) {
        return Commands.run(wrap(command), Map.of(), timeout);
    }

    /** Runs {@code command} inside the switch namespace (where {@link #switchInterfaceName()} is). */
    public CommandResult execInSwitch(String... command) {
        List<String> cmd = new ArrayList<>(List.of("ip", "netns", "exec", switchNamespace));
        cmd.addAll(List.of(command));
        return Commands.run(cmd, Map.of(), Duration.ofSeconds(30));
    }

    @Override
    public String toString() {
        return name + "(" + namespace + ", " + address + ")";
    }
}
