package dev.ferry.cli;

import dev.ferry.agent.client.AgentClient;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import java.time.Duration;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

@Command(name = "cancel", description = "Cancel a VM's running migration; the VM keeps running on its source.")
final class CancelCommand implements java.util.concurrent.Callable<Integer> {
  @Mixin
  ClusterOption cluster;

  @Parameters(index = "0", paramLabel = "VM")
  String vm;

  @Override
  public Integer call() {
    ClusterFile f = cluster.load();
    ClusterFile.Host h = LocalCluster.locate(f, vm, Duration.ofSeconds(10));
    try (AgentClient c = LocalCluster.client(h, Duration.ofSeconds(10))) {
      var r = c.cancelMigration(vm);
      System.out.println(r.getMessage());
      return r.getCancelled() ? 0 : 1;
    }
  }
}
