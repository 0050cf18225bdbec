package dev.ferry.cli;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.cli.cluster.ClusterFile;
import dev.ferry.cli.cluster.LocalCluster;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.vm.DirectBoot;
import dev.ferry.proto.vm.Disk;
import dev.ferry.proto.vm.DiskFormat;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import dev.ferry.proto.vm.Workload;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(name = "vm", description = "Create, list, start, stop and delete VMs.",
    subcommands = {VmCommand.Create.class, VmCommand.ListVms.class, VmCommand.Show.class, VmCommand.Start.class,
        VmCommand.Stop.class, VmCommand.Delete.class})
final class VmCommand implements Runnable {
  static final Duration DEADLINE = Duration.ofSeconds(120);

  @Override
  public void run() {
    throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this),
        "missing subcommand: create, list, show, start, stop or delete");
  }

  @Command(name = "create", description = "Define a VM on a host and start it.")
  static final class Create implements Runnable {
    @Mixin
    ClusterOption cluster;

    @Parameters(index = "0", paramLabel = "NAME")
    String name;

    @Option(names = "--memory", required = true, paramLabel = "SIZE", description = "Guest RAM, e.g. 512M or 4G.")
    String memory;

    @Option(names = "--vcpus", defaultValue = "1")
    int vcpus;

    @Option(names = "--host", paramLabel = "HOST", description = "Host to run on (default: the host with the fewest VMs).")
    String host;

    @Option(names = "--dirty-rate", paramLabel = "RATE", defaultValue = "0",
        description = "How fast the guest writes memory, bytes per second, e.g. 32M (default: idle).")
    String dirtyRate;

    @Option(names = "--working-set", paramLabel = "SIZE", description = "Memory the guest writes to (default: all).")
    String workingSet;

    @Option(names = "--hot-set", paramLabel = "SIZE", description = "Part of the working set written most (default: none).")
    String hotSet;

    @Option(names = "--hot-percent", defaultValue = "0", description = "Share of writes that go to the hot set.")
    int hotPercent;

    @Option(names = "--pattern", defaultValue = "compressible",
        description = "What memory holds: random, compressible or sparse (default: ${DEFAULT-VALUE}).")
    String pattern;

    @Option(names = "--machine", description = "QEMU machine type (qemu driver).")
    String machine;

    @Option(names = "--kernel", paramLabel = "FILE", description = "Boot this kernel instead of the test guest (qemu driver).")
    String kernel;

    @Option(names = "--initrd", paramLabel = "FILE")
    String initrd;

    @Option(names = "--append", paramLabel = "STRING", description = "Kernel command line.")
    String append;

    @Option(names = "--disk", paramLabel = "FILE[,format=raw|qcow2][,ro]",
        description = "A disk image on storage every host can reach (qemu driver); repeatable.")
    List<String> disks = new ArrayList<>();

    @Option(names = "--no-start", description = "Define the VM without starting it.")
    boolean noStart;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    public void run() {
      VmSpec spec = spec();
      ClusterFile f = cluster.load();
      ClusterFile.Host target = host != null ? f.host(host) : leastLoaded(f);
      try (AgentClient c = LocalCluster.client(target, DEADLINE)) {
        VmStatus s = c.createVm(CreateVmRequest.newBuilder().setSpec(spec).setStart(!noStart)
            .setRequestId(UUID.randomUUID().toString()).build());
        if (json) {
          System.out.println(Json.write(row(s)));
        } else {
          System.out.println("created " + name + " on " + target.id() + " (" + Sizes.format(spec.getMemoryBytes()) + ", "
              + state(s.getState()) + ")");
        }
      }
    }

    VmSpec spec() {
      long mem = Sizes.parseSize(memory);
      if (mem < (1 << 20)) {
        throw new IllegalArgumentException("--memory " + memory + " is too small (at least 1M)");
      }
      long rate = Sizes.parseRate(dirtyRate);
      Workload.Builder w = Workload.newBuilder()
          .setDirtyRatePagesPerSec(rate / 4096)
          .setWorkingSetBytes(workingSet == null ? 0 : Sizes.parseSize(workingSet))
          .setHotSetBytes(hotSet == null ? 0 : Sizes.parseSize(hotSet))
          .setHotPercent(hotPercent)
          .setPattern(pattern(pattern));
      if (hotPercent < 0 || hotPercent > 100) {
        throw new IllegalArgumentException("--hot-percent must be between 0 and 100");
      }
      if (vcpus < 1 || vcpus > 255) {
        throw new IllegalArgumentException("--vcpus must be between 1 and 255");
      }
      VmSpec.Builder b = VmSpec.newBuilder().setSchemaVersion(1).setName(name).setMemoryBytes(mem).setVcpus(vcpus)
          .setWorkload(w);
      if (machine != null) {
        b.setMachine(machine);
      }
      if (kernel != null) {
        DirectBoot.Builder boot = DirectBoot.newBuilder().setKernel(absolute(kernel));
        if (initrd != null) {
          boot.setInitrd(absolute(initrd));
        }
        if (append != null) {
          boot.setAppend(append);
        }
        b.setBoot(boot);
      } else if (initrd != null || append != null) {
        throw new IllegalArgumentException("--initrd and --append need --kernel");
      }
      for (String d : disks) {
        b.addDisks(disk(d));
      }
      return b.build();
    }

    private static String absolute(String file) {
      return java.nio.file.Path.of(file).toAbsolutePath().normalize().toString();
    }

    static Disk disk(String text) {
      String[] parts = text.split(",");
      Disk.Builder d = Disk.newBuilder().setPath(absolute(parts[0])).setFormat(DiskFormat.DISK_FORMAT_RAW);
      for (int i = 1; i < parts.length; i++) {
        switch (parts[i]) {
          case "format=raw" -> d.setFormat(DiskFormat.DISK_FORMAT_RAW);
          case "format=qcow2" -> d.setFormat(DiskFormat.DISK_FORMAT_QCOW2);
          case "ro" -> d.setReadOnly(true);
          default -> throw new IllegalArgumentException("bad --disk option '" + parts[i] + "': use format=raw, format=qcow2 or ro");
        }
      }
      return d.build();
    }

    static Pattern pattern(String p) {
      return switch (p.toLowerCase(Locale.ROOT)) {
        case "random" -> Pattern.PATTERN_RANDOM;
        case "compressible" -> Pattern.PATTERN_COMPRESSIBLE;
        case "sparse" -> Pattern.PATTERN_SPARSE;
        default -> throw new IllegalArgumentException("bad --pattern '" + p + "': use random, compressible or sparse");
      };
    }

    static ClusterFile.Host leastLoaded(ClusterFile f) {
      ClusterFile.Host best = null;
      int fewest = Integer.MAX_VALUE;
      for (ClusterFile.Host h : f.hosts()) {
        try (AgentClient c = LocalCluster.client(h, Duration.ofSeconds(5))) {
          int n = c.listVms().size();
          if (n < fewest) {
            fewest = n;
            best = h;
          }
        } catch (AgentCallException e) {
          // an unreachable host takes no new VM
        }
      }
      if (best == null) {
        throw new CliException("no host of the cluster answers");
      }
      return best;
    }
  }

  static String state(VmState s) {
    return s.name().replace("VM_STATE_", "").toLowerCase(Locale.ROOT).replace('_', '-');
  }

  static Map<String, Object> row(VmStatus s) {
    Map<String, Object> r = new LinkedHashMap<>();
    r.put("name", s.getSpec().getName());
    r.put("host", s.getHost());
    r.put("state", state(s.getState()));
    r.put("memoryBytes", s.getSpec().getMemoryBytes());
    r.put("vcpus", s.getSpec().getVcpus());
    r.put("epoch", s.getEpoch());
    r.put("driver", s.getDriver());
    r.put("heartbeat", s.getHeartbeat());
    if (!s.getReason().isEmpty()) {
      r.put("reason", s.getReason());
    }
    return r;
  }

  @Command(name = "list", description = "List the VMs of every host.")
  static final class ListVms implements Runnable {
    @Mixin
    ClusterOption cluster;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    public void run() {
      ClusterFile f = cluster.load();
      List<Map<String, Object>> rows = new ArrayList<>();
      List<String> unreachable = new ArrayList<>();
      for (ClusterFile.Host h : f.hosts()) {
        try (AgentClient c = LocalCluster.client(h, Duration.ofSeconds(10))) {
          for (VmStatus s : c.listVms()) {
            rows.add(row(s));
          }
        } catch (AgentCallException e) {
          unreachable.add(h.id());
          System.err.println("ferry: warning: " + e.getMessage());
        }
      }
      if (json) {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("vms", rows);
        out.put("unreachableHosts", unreachable);
        System.out.println(Json.write(out));
        return;
      }
      System.out.printf("%-16s %-10s %-14s %-10s %-6s %-10s %s%n", "NAME", "HOST", "STATE", "MEMORY", "EPOCH", "HEARTBEAT", "NOTE");
      for (Map<String, Object> r : rows) {
        System.out.printf("%-16s %-10s %-14s %-10s %-6s %-10s %s%n", r.get("name"), r.get("host"), r.get("state"),
            Sizes.format((Long) r.get("memoryBytes")), r.get("epoch"), r.get("heartbeat"), r.getOrDefault("reason", ""));
      }
    }
  }

  @Command(name = "show", description = "Show one VM.")
  static final class Show implements Runnable {
    @Mixin
    ClusterOption cluster;

    @Parameters(index = "0", paramLabel = "NAME")
    String name;

    @Option(names = "--json", description = "Print JSON.")
    boolean json;

    @Override
    public void run() {
      ClusterFile f = cluster.load();
      ClusterFile.Host h = LocalCluster.locate(f, name, Duration.ofSeconds(10));
      try (AgentClient c = LocalCluster.client(h, DEADLINE)) {
        Map<String, Object> r = row(c.getVm(name));
        if (json) {
          System.out.println(Json.write(r));
        } else {
          r.forEach((k, v) -> System.out.printf("%-12s %s%n", k, v));
        }
      }
    }
  }

  abstract static class OnVm implements Runnable {
    @Mixin
    ClusterOption cluster;

    @Parameters(index = "0", paramLabel = "NAME")
    String name;

    abstract VmStatus act(AgentClient c);

    abstract String verb();

    @Override
    public void run() {
      ClusterFile f = cluster.load();
      ClusterFile.Host h = LocalCluster.locate(f, name, Duration.ofSeconds(10));
      try (AgentClient c = LocalCluster.client(h, DEADLINE)) {
        VmStatus s = act(c);
        System.out.println(verb() + " " + name + " on " + h.id() + " (" + state(s.getState()) + ")");
      }
    }
  }

  @Command(name = "start", description = "Boot a stopped VM.")
  static final class Start extends OnVm {
    @Override
    VmStatus act(AgentClient c) {
      return c.startVm(name);
    }

    @Override
    String verb() {
      return "started";
    }
  }

  @Command(name = "stop", description = "Power a VM off (its definition stays).")
  static final class Stop extends OnVm {
    @Override
    VmStatus act(AgentClient c) {
      return c.stopVm(name);
    }

    @Override
    String verb() {
      return "stopped";
    }
  }

  @Command(name = "delete", description = "Power a VM off and remove it.")
  static final class Delete extends OnVm {
    @Override
    VmStatus act(AgentClient c) {
      return c.deleteVm(name);
    }

    @Override
    String verb() {
      return "deleted";
    }
  }
}
