package dev.ferry.cli;

import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.coordinator.ClusterStatus;
import dev.ferry.proto.coordinator.HostView;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(
        name = "cluster",
        description = "Start, stop and inspect a cluster.",
        subcommands = {ClusterCommand.Up.class, ClusterCommand.Down.class, ClusterCommand.Status.class})
final class ClusterCommand implements Runnable {
    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(
                new picocli.CommandLine(this), "missing subcommand: up, down or status");
    }

    static Path dir(Path dirOption, ClusterOption cluster) {
        return dirOption != null ? dirOption : cluster.dir();
    }

    /**
     * `cluster up` and `cluster down` manage a one-machine cluster with its own ZooKeeper, found by
     * its directory; --zk and --cluster-name (accepted through the shared option set) would be
     * silently ignored, so they are refused.
     */
    static void refuseExternalZooKeeper(String command, ClusterOption cluster) {
        if (cluster.zk != null || cluster.clusterName != null) {
            throw new CliException(
                    "cluster " + command + " manages a local cluster with its own embedded ZooKeeper (--dir); "
                            + "--zk and --cluster-name are not for it. On an external ensemble, run `ferry coordinator "
                            + "--zk CONNECT` and `ferry agent --zk CONNECT` on each host (README, The CLI)",
                    2);
        }
    }

    @Command(
            name = "up",
            description = {
                "Start a local cluster on loopback, every part a background process: one coordinator with an "
                        + "embedded ZooKeeper server (data in DIR/zk) and N agents; records them in DIR/cluster.json."
            })
    static final class Up implements Runnable {
        @Option(
                names = "--dir",
                paramLabel = "DIR",
                description = "Cluster directory (default: --cluster or $FERRY_CLUSTER).")
        Path dir;

        @Mixin
        ClusterOption cluster;

        @Option(names = "--hosts", defaultValue = "2", description = "Number of agents (default: ${DEFAULT-VALUE}).")
        int hosts;

        @Option(names = "--driver", defaultValue = "sim", description = "sim or qemu (default: ${DEFAULT-VALUE}).")
        String driver;

        @Option(
                names = "--session-timeout-ms",
                defaultValue = "10000",
                description =
                        "The agents' ZooKeeper session timeout: a dead host is detected after this (default: ${DEFAULT-VALUE}).")
        long sessionTimeoutMs;

        @Override
        public void run() {
            refuseExternalZooKeeper("up", cluster);
            if (cluster.tls.given()) {
                throw new CliException(
                        "cluster up makes its own CA and certificates (in DIR/pki); --cert/--key/--ca are for "
                                + "commands using a cluster",
                        2);
            }
            Drivers.checkName(driver);
            if (sessionTimeoutMs < 1000) {
                throw new IllegalArgumentException("--session-timeout-ms must be at least 1000");
            }
            Path d = dir(dir, cluster).toAbsolutePath().normalize();
            ClusterFile f = LocalCluster.up(
                    d,
                    LocalCluster.Options.of(hosts, driver)
                            .withSessionTimeout(Duration.ofMillis(sessionTimeoutMs))
                            .insecure(cluster.tls.insecure),
                    Duration.ofSeconds(90));
            System.out.printf(
                    "coordinator  %s  pid %d  log %s  metrics http://%s/metrics%n",
                    f.coordinator().endpoint(),
                    f.coordinator().pid(),
                    f.coordinator().log(),
                    f.coordinator().metrics());
            System.out.printf(
                    "zookeeper    %s  (embedded in the coordinator, data in %s)%n",
                    f.zookeeper(), f.coordinator().zkDataDir());
            for (ClusterFile.Host h : f.hosts()) {
                System.out.printf(
                        "%s  %s  pid %d  log %s  metrics http://%s/metrics%n",
                        h.id(), h.endpoint(), h.pid(), h.log(), h.metrics());
            }
            System.out.println("cluster of " + f.hosts().size() + " agents (" + driver + " driver) at " + d);
            if (driver.equals("qemu")) {
                System.out.println("VM kernels, initrds and disks: put them in " + d.resolve("images")
                        + " (the agents' storage root)");
            }
            System.out.println(
                    f.pki() == null
                            ? "WITHOUT TLS (--insecure): anyone who reaches these ports can take VMs and read guest memory"
                            : "mutual TLS: CA and certificates in " + f.pki() + " (commands of this cluster use "
                                    + f.pki() + "/operator)");
            System.out.println("use it with: export FERRY_CLUSTER=" + d + "   (or --zk " + f.zookeeper() + ")");
        }
    }

    @Command(
            name = "down",
            description = "Stop the coordinator, ZooKeeper and every agent of a local cluster; remove its data.")
    static final class Down implements Runnable {
        @Option(
                names = "--dir",
                paramLabel = "DIR",
                description = "Cluster directory (default: --cluster or $FERRY_CLUSTER).")
        Path dir;

        @Mixin
        ClusterOption cluster;

        @Override
        public void run() {
            refuseExternalZooKeeper("down", cluster);
            Path d = dir(dir, cluster);
            for (String line : LocalCluster.down(d, Duration.ofSeconds(20))) {
                System.out.println(line);
            }
            System.out.println("cluster at " + d.toAbsolutePath().normalize() + " is down");
        }
    }

    @Command(
            name = "status",
            description =
                    "Show the cluster: its coordinators and leader, hosts and VMs, and when every certificate expires "
                            + "(a WARNING line for each that expires within 30 days).")
    static final class Status implements Runnable {
        @Option(
                names = "--dir",
                paramLabel = "DIR",
                description = "Cluster directory (default: --cluster or $FERRY_CLUSTER).")
        Path dir;

        @Mixin
        ClusterOption cluster;

        @Option(names = "--json", description = "Print JSON.")
        boolean json;

        @Override
        public void run() {
            if (dir != null) {
                cluster.cluster = dir;
            }
            try (CoordinatorClient c = cluster.client()) {
                ClusterStatus s = c.status();
                List<HostView> hosts = c.hosts();
                CertificateReport certs = CertificateReport.gather(c, s, hosts, Instant.now());
                // A local cluster's file says where each daemon serves its metrics; a cluster reached
                // through --zk keeps no such record.
                Map<String, String> metrics = cluster.zk == null ? metricsEndpoints(cluster.load()) : Map.of();
                if (json) {
                    Map<String, Object> out = new LinkedHashMap<>();
                    out.put("cluster", s.getCluster());
                    out.put("zookeeper", s.getZookeeper());
                    out.put("leader", s.getLeader());
                    out.put("coordinators", s.getCoordinatorsList());
                    out.put("hostsAlive", s.getHostsAlive());
                    out.put("hostsInMaintenance", s.getHostsInMaintenance());
                    out.put("vms", s.getVms());
                    out.put("vmsRunning", s.getVmsRunning());
                    out.put("openIntents", s.getOpenIntents());
                    out.put("failoverMarginMs", s.getFailoverMarginMs());
                    out.put("hosts", hosts.stream().map(HostCommand::row).toList());
                    out.put("certificates", certs.json());
                    out.put("certificateWarnings", certs.warnings());
                    if (!metrics.isEmpty()) {
                        out.put("metrics", metrics);
                    }
                    System.out.println(Json.write(out));
                    return;
                }
                System.out.println("cluster      " + s.getCluster() + " (ZooKeeper " + s.getZookeeper() + ")");
                System.out.println(
                        "leader       " + (s.getLeader().isEmpty() ? "none (election under way)" : s.getLeader())
                                + "   coordinators: " + String.join(", ", s.getCoordinatorsList()));
                System.out.println("hosts        " + s.getHostsAlive() + " alive, " + s.getHostsInMaintenance()
                        + " in maintenance");
                System.out.println("vms          " + s.getVmsRunning() + " running of " + s.getVms()
                        + "; open intents: " + s.getOpenIntents());
                System.out.println();
                HostCommand.printHosts(hosts, false, System.out);
                System.out.println();
                certs.print(System.out);
                if (!metrics.isEmpty()) {
                    System.out.println();
                    System.out.println("metrics (Prometheus, GET http://ENDPOINT/metrics):");
                    metrics.forEach((daemon, at) -> System.out.printf("  %-12s %s%n", daemon, at));
                }
            }
        }

        /** Each daemon's metrics endpoint, the coordinator first, as `cluster up` recorded them. */
        static Map<String, String> metricsEndpoints(ClusterFile f) {
            Map<String, String> out = new LinkedHashMap<>();
            if (f.coordinator() != null && f.coordinator().metrics() != null) {
                out.put("coordinator", f.coordinator().metrics());
            }
            for (ClusterFile.Host h : f.hosts()) {
                if (h.metrics() != null) {
                    out.put(h.id(), h.metrics());
                }
            }
            return out;
        }
    }
}
