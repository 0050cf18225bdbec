package dev.ferry.cli;

import dev.ferry.agent.client.AgentClient;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "demo", description = {"The one-command tour: start a local cluster, run a busy VM, move it live",
    "with memory verification, show what happened, stop everything."})
final class DemoCommand implements java.util.concurrent.Callable<Integer> {
  @Option(names = "--driver", defaultValue = "sim", description = "sim or qemu (default: ${DEFAULT-VALUE}).")
  String driver;

  @Option(names = "--memory", defaultValue = "512M", description = "Guest RAM (default: ${DEFAULT-VALUE}).")
  String memory;

  @Option(names = "--json", description = "Print {\"migrations\": [...]} as JSON on stdout; narration goes to stderr.")
  boolean json;

  @Option(names = "--keep", description = "Leave the cluster running at the end (it prints how to stop it).")
  boolean keep;

  @Override
  public Integer call() throws IOException, InterruptedException {
    Drivers.checkName(driver);
    PrintStream say = json ? System.err : System.out;
    long mem = Sizes.parseSize(memory);
    Path dir = Files.createTempDirectory("ferry-demo-");
    say.println("Ferry demo: starting 2 agents (" + driver + " driver) on loopback, cluster directory " + dir);
    ClusterFile cluster = LocalCluster.up(dir, 2, driver, Duration.ofSeconds(60));
    List<Map<String, Object>> migrations = new ArrayList<>();
    boolean ok = false;
    try {
      for (ClusterFile.Host h : cluster.hosts()) {
        say.println("  " + h.id() + " at " + h.endpoint() + " (pid " + h.pid() + ")");
      }
      String vm = "demo-vm";
      long workingSet = Math.min(mem / 4, 128L << 20);
      long rate = 16L << 20;
      VmSpec spec = VmSpec.newBuilder().setSchemaVersion(1).setName(vm).setMemoryBytes(mem).setVcpus(1)
          .setWorkload(Workload.newBuilder().setDirtyRatePagesPerSec(rate / 4096).setWorkingSetBytes(workingSet)
              .setHotSetBytes(workingSet / 8).setHotPercent(80).setPattern(Pattern.PATTERN_COMPRESSIBLE))
          .build();
      ClusterFile.Host source = cluster.hosts().get(0);
      ClusterFile.Host target = cluster.hosts().get(1);
      say.printf("creating %s on %s: %s of RAM, the guest writes %s over a %s working set%n", vm, source.id(),
          Sizes.format(mem), Sizes.formatRate(rate), Sizes.format(workingSet));
      long beforeBeat;
      try (AgentClient c = LocalCluster.client(source, Duration.ofSeconds(120))) {
        c.createVm(CreateVmRequest.newBuilder().setSpec(spec).setStart(true).build());
        Thread.sleep(1000);
        beforeBeat = c.getVm(vm).getHeartbeat();
      }
      say.printf("migrating %s from %s to %s live, verifying memory at the switchover%n", vm, source.id(), target.id());
      MigrationSummary s = MigrateCommand.run(cluster, vm, target.id(),
          MigrationOptions.newBuilder().setVerify(true).setDowntimeMs(300).build(),
          new ProgressPrinter(say, false), true);
      migrations.add(Json.migration(s));
      if (s.getStatus() != MigrationPhase.MIGRATION_PHASE_COMPLETED) {
        return finish(migrations, 1);
      }
      try (AgentClient c = LocalCluster.client(target, Duration.ofSeconds(30))) {
        long arrived = c.getVm(vm).getHeartbeat();
        for (int i = 0; i < 50 && arrived <= 0; i++) {
          // A QEMU guest's console on the new host is empty until its next heartbeat line.
          Thread.sleep(100);
          arrived = c.getVm(vm).getHeartbeat();
        }
        Thread.sleep(1000);
        var after = c.getVm(vm);
        say.printf("%s runs on %s at epoch %d; its heartbeat went %d -> %d -> %d: the guest kept counting, no restart%n",
            vm, target.id(), after.getEpoch(), beforeBeat, arrived, after.getHeartbeat());
      }
      ok = true;
      return finish(migrations, 0);
    } finally {
      if (keep && ok) {
        say.println("cluster left running: export FERRY_CLUSTER=" + dir + "; stop it with: ferry cluster down --dir " + dir);
      } else {
        LocalCluster.down(dir, Duration.ofSeconds(20));
        deleteQuietly(dir);
        say.println("stopped the cluster; nothing is left running");
      }
    }
  }

  private int finish(List<Map<String, Object>> migrations, int code) {
    if (json) {
      Map<String, Object> out = new LinkedHashMap<>();
      out.put("migrations", migrations);
      System.out.println(Json.write(out));
    }
    return code;
  }

  private static void deleteQuietly(Path dir) {
    try (var s = Files.walk(dir)) {
      for (Path p : s.sorted(java.util.Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(p);
      }
    } catch (IOException e) {
      // a temp directory; the OS cleans it eventually
    }
  }
}
