package dev.ferry.chaos.history;

import dev.ferry.testkit.netns.CommandResult;
import dev.ferry.testkit.netns.NetnsCluster;
import dev.ferry.testkit.netns.NetnsHost;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Runs a small tool of the chaos suite as a process on the cluster's control host (the runner's
 * JVM cannot reach the cluster's namespaces), with this JVM's class path. Its arguments are
 * ZK-CONNECT CLUSTER-NAME CERT KEY CA (a coordinator's certificate: the ensemble speaks only TLS
 * to cluster identities) followed by the tool's own.
 */
public final class ControlTool {
    private ControlTool() {}

    public static CommandResult run(NetnsCluster cluster, Class<?> main, Duration timeout, String... args) {
        List<String> all = new ArrayList<>(List.of(cluster.zkConnect(), cluster.clusterName()));
        cluster.credentialFiles("c", "coordinator-1").forEach(f -> all.add(f.toString()));
        all.addAll(List.of(args));
        return on(cluster.control(), main, timeout, all);
    }

    /**
     * {@link #run} for a tool that only reads: in the control host's long-lived {@link
     * dev.ferry.testkit.netns.ControlShell} instead of a JVM of its own (a look a runner takes
     * several times a run costs milliseconds there, seconds as a process).
     */
    public static CommandResult read(NetnsCluster cluster, Class<?> main, Duration timeout, String... args) {
        List<String> all = new ArrayList<>(List.of(cluster.zkConnect(), cluster.clusterName()));
        cluster.credentialFiles("c", "coordinator-1").forEach(f -> all.add(f.toString()));
        all.addAll(List.of(args));
        return cluster.shell().run(timeout, main.getName(), all);
    }

    /**
     * Runs {@code main} with {@code args} alone as a process in {@code host}'s namespace, with this
     * JVM's class path: a tool that must act as that host (scenario 13's hostile source speaks
     * from the source host's address, with its certificate).
     */
    public static CommandResult on(NetnsHost host, Class<?> main, Duration timeout, List<String> args) {
        List<String> cmd = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp",
                System.getProperty("java.class.path"),
                main.getName()));
        cmd.addAll(args);
        return host.exec(timeout, cmd);
    }

    /** The ZooKeeper clients of a tool started by {@link #run}, from its first five arguments. */
    public static dev.ferry.cluster.store.ZkClients zk(String[] args) {
        var creds = dev.ferry.pki.Credentials.load(
                Path.of(args[2]), Path.of(args[3]), Path.of(args[4]), java.time.Clock.systemUTC());
        return dev.ferry.cluster.store.ZkClients.of(
                args[0], args[1], Duration.ofSeconds(10), dev.ferry.cluster.store.ZkSecurity.x509(creds));
    }
}
