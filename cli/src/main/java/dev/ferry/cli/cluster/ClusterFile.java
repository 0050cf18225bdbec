package dev.ferry.cli.cluster;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.ferry.cli.CliException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * DIR/cluster.json: what `ferry cluster up` started, so that every other command (and `cluster
 * down`) finds it: the ZooKeeper the coordinator embeds, the coordinator, and the agents (their
 * endpoints, metrics endpoints, process ids and directories). A cluster started without a coordinator (the transfer
 * benchmark's) has no {@code zookeeper} and no {@code coordinator}.
 */
@JsonIgnoreProperties(ignoreUnknown = false)
public record ClusterFile(
        int version,
        String driver,
        String createdAt,
        String zookeeper,
        String clusterName,
        long sessionTimeoutMs,
        Coordinator coordinator,
        List<Host> hosts,
        String pki) {
    /**
     * 3: the cluster's certificates ({@code pki}, null when it was started with --insecure). 4: each
     * daemon's metrics endpoint ({@code metrics}, HOST:PORT of its {@code GET /metrics}).
     */
    public static final int VERSION = 4;

    /**
     * The coordinator process (it also runs the embedded ZooKeeper server).
     *
     * @param metrics HOST:PORT of its Prometheus metrics
     */
    public record Coordinator(String endpoint, long pid, String log, String zkDataDir, String metrics) {}

    public static final String NAME = "cluster.json";
    private static final ObjectMapper MAPPER = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** An agent process; {@code metrics} is HOST:PORT of its Prometheus metrics. */
    public record Host(
            String id, String endpoint, long pid, String dataDir, String ramDir, String log, String metrics) {}

    public Host host(String id) {
        for (Host h : hosts) {
            if (h.id().equals(id)) {
                return h;
            }
        }
        throw new CliException("no host '" + id + "' in this cluster (hosts: "
                + String.join(", ", hosts.stream().map(Host::id).toList()) + ")");
    }

    /** The same cluster with {@code hosts} instead (an agent restarted). */
    public ClusterFile withHosts(List<Host> newHosts) {
        return new ClusterFile(
                version, driver, createdAt, zookeeper, clusterName, sessionTimeoutMs, coordinator, newHosts, pki);
    }

    /** True when a coordinator and ZooKeeper run this cluster (every cluster `ferry cluster up` starts). */
    public boolean clustered() {
        return zookeeper != null && coordinator != null;
    }

    public static ClusterFile read(Path dir) {
        Path file = dir.resolve(NAME);
        try {
            ClusterFile f = MAPPER.readValue(Files.readAllBytes(file), ClusterFile.class);
            if (f.version() != VERSION) {
                throw new CliException(file + " has version " + f.version() + "; this ferry reads version " + VERSION
                        + " (stop that cluster with the ferry that started it)");
            }
            return f;
        } catch (NoSuchFileException e) {
            throw new CliException(
                    "no cluster at " + dir + " (no " + NAME + "); start one with 'ferry cluster up --dir " + dir + "'");
        } catch (IOException e) {
            throw new CliException("cannot read " + file + ": " + e.getMessage());
        }
    }

    public void write(Path dir) {
        Path file = dir.resolve(NAME);
        Path tmp = dir.resolve(NAME + ".tmp");
        try {
            Files.write(tmp, MAPPER.writeValueAsBytes(this));
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new CliException("cannot write " + file + ": " + e.getMessage());
        }
    }
}
