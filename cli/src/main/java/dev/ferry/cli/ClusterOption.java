package dev.ferry.cli;

import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.cli.cluster.LocalPki;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.rpc.Transport;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Which cluster a command talks to: --cluster DIR (a local cluster's directory, default
 * $FERRY_CLUSTER) or --zk CONNECT (any cluster, through its ZooKeeper; with --cluster-name).
 */
public final class ClusterOption {
    @Option(names = "--cluster", paramLabel = "DIR", description = "Cluster directory (default: $FERRY_CLUSTER).")
    Path cluster;

    @Option(
            names = "--zk",
            paramLabel = "CONNECT",
            description = "The cluster's ZooKeeper (host:port,...), instead of a cluster directory.")
    String zk;

    @Option(
            names = "--cluster-name",
            paramLabel = "NAME",
            description = "With --zk: the cluster's name in ZooKeeper (default: $FERRY_CLUSTER_NAME or 'default').")
    String clusterName;

    /** Mutual TLS to the cluster; a local cluster's own operator certificate when none is given. */
    @Mixin
    TlsOptions tls;

    Path dir() {
        if (cluster != null) {
            return cluster;
        }
        String env = System.getenv("FERRY_CLUSTER");
        if (env == null || env.isBlank()) {
            throw new CliException("which cluster? pass --cluster DIR or --zk CONNECT, or set FERRY_CLUSTER", 2);
        }
        return Path.of(env);
    }

    ClusterFile load() {
        return ClusterFile.read(dir());
    }

    String name() {
        if (clusterName != null) {
            return clusterName;
        }
        String env = System.getenv("FERRY_CLUSTER_NAME");
        return env == null || env.isBlank() ? LocalCluster.NAME : env;
    }

    /** A client of the cluster's coordinator; the caller closes it. */
    CoordinatorClient client() {
        ZkClients zkClients;
        CoordinatorClient.Locator locator;
        Transport transport;
        try {
            if (zk != null) {
                transport = tls.client("ferry");
                zkClients = ZkClients.of(zk, name(), Duration.ofSeconds(10), tls.zooKeeper("ferry"));
                locator = CoordinatorClient.zookeeper(zkClients);
            } else {
                ClusterFile f = load();
                if (!f.clustered()) {
                    throw new CliException(
                            "the cluster at " + dir() + " has no coordinator (it was started for a benchmark)");
                }
                boolean own = tls.given() || tls.insecure;
                transport = own ? tls.client("ferry") : LocalPki.transport(f);
                zkClients = ZkClients.of(
                        f.zookeeper(),
                        f.clusterName(),
                        Duration.ofSeconds(10),
                        own ? tls.zooKeeper("ferry") : LocalPki.zooKeeper(f));
                // The recorded coordinator first (no ZooKeeper session needed); ZooKeeper when it does not answer.
                locator = new RecordedThenZooKeeper(f.coordinator().endpoint(), zkClients);
            }
        } catch (IllegalArgumentException e) {
            throw new CliException(e.getMessage(), 2);
        }
        return new CoordinatorClient(transport, locator, Duration.ofMinutes(30), Duration.ofSeconds(30));
    }

    /** A client of a local cluster's coordinator (the demo, benchmarks); the caller closes it. */
    static CoordinatorClient client(ClusterFile f) {
        ZkClients zk = ZkClients.of(f.zookeeper(), f.clusterName(), Duration.ofSeconds(10), LocalPki.zooKeeper(f));
        return new CoordinatorClient(
                LocalPki.transport(f),
                new RecordedThenZooKeeper(f.coordinator().endpoint(), zk),
                Duration.ofMinutes(30),
                Duration.ofSeconds(30));
    }

    /** Where a local cluster's coordinator was started; after that fails, ask ZooKeeper. */
    private static final class RecordedThenZooKeeper implements CoordinatorClient.Locator {
        private final String recorded;
        private final CoordinatorClient.Locator zk;
        private boolean used;

        RecordedThenZooKeeper(String recorded, ZkClients zk) {
            this.recorded = recorded;
            this.zk = CoordinatorClient.zookeeper(zk);
        }

        @Override
        public synchronized List<String> endpoints() throws Exception {
            if (!used) {
                used = true;
                return List.of(recorded);
            }
            return zk.endpoints();
        }

        @Override
        public void close() {
            zk.close();
        }
    }
}
