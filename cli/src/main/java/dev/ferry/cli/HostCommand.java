package dev.ferry.cli;

import dev.ferry.cli.cluster.ClusterFile;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

@Command(name = "host", description = "Hosts of the cluster.", subcommands = {HostCommand.ListHosts.class})
final class HostCommand implements Runnable {
  @Override
  public void run() {
    throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this), "missing subcommand: list");
  }

  @Command(name = "list", description = "List hosts: endpoint, process, state, VMs.")
  static final class ListHosts implements Runnable {
    @Mixin
    ClusterOption cluster;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    public void run() {
      printHosts(cluster.load(), json);
    }
  }

  static void printHosts(ClusterFile f, boolean json) {
    List<Map<String, Object>> rows = ClusterCommand.hostRows(f);
    if (json) {
      System.out.println(Json.write(Map.of("hosts", rows)));
      return;
    }
    System.out.printf("%-10s %-22s %-8s %-6s %-6s %s%n", "HOST", "ENDPOINT", "PID", "STATE", "VMS", "DRIVER");
    for (Map<String, Object> r : rows) {
      System.out.printf("%-10s %-22s %-8s %-6s %-6s %s%n", r.get("id"), r.get("endpoint"), r.get("pid"), r.get("state"),
          r.getOrDefault("vms", "-"), r.getOrDefault("driver", r.getOrDefault("error", "")));
    }
  }
}
