package dev.ferry.cli;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.proto.agent.AgentInfo;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "cluster", description = "Start, stop and inspect a local cluster of agents.",
    subcommands = {ClusterCommand.Up.class, ClusterCommand.Down.class, ClusterCommand.Status.class})
final class ClusterCommand implements Runnable {
  @Override
  public void run() {
    throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this), "missing subcommand: up, down or status");
  }

  static Path dir(Path dirOption, ClusterOption cluster) {
    return dirOption != null ? dirOption : cluster.dir();
  }

  @Command(name = "up", description = "Start N agents on loopback as background processes; records them in DIR/cluster.json.")
  static final class Up implements Runnable {
    @Option(names = "--dir", paramLabel = "DIR", description = "Cluster directory (default: --cluster or $FERRY_CLUSTER).")
    Path dir;

    @Mixin
    ClusterOption cluster;

    @Option(names = "--hosts", defaultValue = "2", description = "Number of agents (default: ${DEFAULT-VALUE}).")
    int hosts;

    @Option(names = "--driver", defaultValue = "sim", description = "sim or qemu (default: ${DEFAULT-VALUE}).")
    String driver;

    @Override
    public void run() {
      Drivers.checkName(driver);
      Path d = dir(dir, cluster).toAbsolutePath().normalize();
      ClusterFile f = LocalCluster.up(d, hosts, driver, Duration.ofSeconds(60));
      for (ClusterFile.Host h : f.hosts()) {
        System.out.printf("%s  %s  pid %d  log %s%n", h.id(), h.endpoint(), h.pid(), h.log());
      }
      System.out.println("cluster of " + f.hosts().size() + " agents (" + driver + " driver) at " + d);
      System.out.println("use it with: export FERRY_CLUSTER=" + d);
    }
  }

  @Command(name = "down", description = "Stop every agent of the cluster and remove their guests' memory.")
  static final class Down implements Runnable {
    @Option(names = "--dir", paramLabel = "DIR", description = "Cluster directory (default: --cluster or $FERRY_CLUSTER).")
    Path dir;

    @Mixin
    ClusterOption cluster;

    @Override
    public void run() {
      Path d = dir(dir, cluster);
      for (String line : LocalCluster.down(d, Duration.ofSeconds(20))) {
        System.out.println(line);
      }
      System.out.println("cluster at " + d.toAbsolutePath().normalize() + " is down");
    }
  }

  @Command(name = "status", description = "Show every agent of the cluster and whether it answers.")
  static final class Status implements Runnable {
    @Option(names = "--dir", paramLabel = "DIR", description = "Cluster directory (default: --cluster or $FERRY_CLUSTER).")
    Path dir;

    @Mixin
    ClusterOption cluster;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    public void run() {
      HostCommand.printHosts(ClusterFile.read(dir(dir, cluster)), json);
    }
  }

  /** One row per host, probing each agent. */
  static List<Map<String, Object>> hostRows(ClusterFile f) {
    List<Map<String, Object>> rows = new ArrayList<>();
    for (ClusterFile.Host h : f.hosts()) {
      Map<String, Object> row = new LinkedHashMap<>();
      row.put("id", h.id());
      row.put("endpoint", h.endpoint());
      row.put("pid", h.pid());
      try (AgentClient c = LocalCluster.client(h, Duration.ofSeconds(5))) {
        AgentInfo info = c.info();
        row.put("state", "up");
        row.put("driver", info.getDriver());
        row.put("vms", c.listVms().size());
        row.put("dirtyTracking", info.getDirtyTracking());
      } catch (AgentCallException e) {
        row.put("state", "down");
        row.put("error", e.getMessage());
      }
      rows.add(row);
    }
    return rows;
  }
}
