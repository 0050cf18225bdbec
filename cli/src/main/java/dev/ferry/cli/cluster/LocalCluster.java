package dev.ferry.cli.cluster;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.cli.CliException;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

/**
 * A cluster of agents on this machine, each a background process on loopback: for trying Ferry
 * out, the demo, and tests that kill a host for real.
 */
public final class LocalCluster {
  private LocalCluster() {}

  /** JVM options of agent processes. */
  static final List<String> AGENT_JVM = List.of("--enable-native-access=ALL-UNNAMED", "-XX:+UseParallelGC",
      "-Xms64m", "-Xmx1g", "-XX:MaxDirectMemorySize=512m", "-XX:+ExitOnOutOfMemoryError");

  /** Starts {@code hosts} agents; on any failure stops those already started and throws. */
  public static ClusterFile up(Path dir, int hosts, String driver, Duration timeout) {
    if (hosts < 1 || hosts > 64) {
      throw new CliException("--hosts must be between 1 and 64, got " + hosts, 2);
    }
    dir = dir.toAbsolutePath().normalize();
    if (Files.exists(dir.resolve(ClusterFile.NAME))) {
      ClusterFile old = ClusterFile.read(dir);
      if (old.hosts().stream().anyMatch(h -> alive(h).isPresent())) {
        throw new CliException("a cluster is already running at " + dir + "; stop it with 'ferry cluster down --dir " + dir + "'");
      }
    }
    try {
      Files.createDirectories(dir);
    } catch (IOException e) {
      throw new CliException("cannot create " + dir + ": " + e.getMessage());
    }
    List<ClusterFile.Host> started = new ArrayList<>();
    List<Process> processes = new ArrayList<>();
    String ramBase = ramRoot() + "/" + Integer.toHexString(dir.toString().hashCode());
    try {
      for (int i = 1; i <= hosts; i++) {
        String id = "host-" + i;
        Path data = dir.resolve(id);
        Path ram = Path.of(ramBase, id);
        Path endpointFile = data.resolve("endpoint");
        Path log = data.resolve("agent.log");
        Files.createDirectories(data);
        Files.deleteIfExists(endpointFile);
        List<String> cmd = new ArrayList<>();
        cmd.add(javaBinary());
        cmd.addAll(AGENT_JVM);
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add("dev.ferry.cli.Main");
        cmd.addAll(List.of("agent", "--host-id", id, "--listen", "127.0.0.1:0", "--data-dir", data.toString(),
            "--ram-dir", ram.toString(), "--driver", driver, "--endpoint-file", endpointFile.toString()));
        ProcessBuilder pb = new ProcessBuilder(cmd)
            .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
            .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()))
            .redirectErrorStream(true);
        Process p = pb.start();
        processes.add(p);
        started.add(new ClusterFile.Host(id, null, p.pid(), data.toString(), ram.toString(), log.toString()));
      }
      long deadline = System.nanoTime() + timeout.toNanos();
      List<ClusterFile.Host> ready = new ArrayList<>();
      for (int i = 0; i < started.size(); i++) {
        ClusterFile.Host h = started.get(i);
        Process p = processes.get(i);
        Path endpointFile = Path.of(h.dataDir(), "endpoint");
        while (!Files.exists(endpointFile)) {
          if (!p.isAlive()) {
            throw new CliException("agent " + h.id() + " exited with code " + p.exitValue() + " during start-up:\n"
                + tail(Path.of(h.log()), 15));
          }
          if (System.nanoTime() > deadline) {
            throw new CliException("agent " + h.id() + " did not start within " + timeout.toSeconds() + " s; see " + h.log());
          }
          Thread.sleep(50);
        }
        String endpoint = Files.readString(endpointFile, StandardCharsets.UTF_8).trim();
        ready.add(new ClusterFile.Host(h.id(), endpoint, h.pid(), h.dataDir(), h.ramDir(), h.log()));
      }
      ClusterFile file = new ClusterFile(ClusterFile.VERSION, driver, Instant.now().toString(), ready);
      file.write(dir);
      return file;
    } catch (IOException e) {
      stopProcesses(processes);
      throw new CliException("cannot start agents: " + e.getMessage());
    } catch (InterruptedException e) {
      stopProcesses(processes);
      Thread.currentThread().interrupt();
      throw new CliException("interrupted while starting agents");
    } catch (RuntimeException e) {
      stopProcesses(processes);
      throw e;
    }
  }

  private static void stopProcesses(List<Process> processes) {
    for (Process p : processes) {
      p.destroy();
    }
    for (Process p : processes) {
      try {
        if (!p.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
          p.destroyForcibly().waitFor(5, java.util.concurrent.TimeUnit.SECONDS);
        }
      } catch (InterruptedException e) {
        p.destroyForcibly();
        Thread.currentThread().interrupt();
      }
    }
  }

  /** The running agent process of {@code host}, verified by its command line (pids are reused). */
  public static Optional<ProcessHandle> alive(ClusterFile.Host host) {
    return ProcessHandle.of(host.pid()).filter(ProcessHandle::isAlive).filter(p -> {
      List<String> args = commandLine(p.pid());
      return args.contains("agent") && args.contains(host.id());
    });
  }

  /** A process's arguments from /proc (ProcessHandle.Info omits them for long command lines). */
  static List<String> commandLine(long pid) {
    try {
      byte[] raw = Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline"));
      return List.of(new String(raw, StandardCharsets.UTF_8).split("\u0000"));
    } catch (IOException e) {
      return List.of();
    }
  }

  /** Stops every agent of the cluster (TERM, then KILL after a grace period) and removes leftover RAM files. */
  public static List<String> down(Path dir, Duration grace) {
    dir = dir.toAbsolutePath().normalize();
    ClusterFile file = ClusterFile.read(dir);
    List<String> report = new ArrayList<>();
    List<ProcessHandle> running = new ArrayList<>();
    for (ClusterFile.Host h : file.hosts()) {
      Optional<ProcessHandle> p = alive(h);
      if (p.isPresent()) {
        p.get().destroy();
        running.add(p.get());
        report.add("stopping " + h.id() + " (pid " + h.pid() + ")");
      } else {
        report.add(h.id() + " was not running");
      }
    }
    long deadline = System.nanoTime() + grace.toNanos();
    for (ProcessHandle p : running) {
      try {
        long left = Math.max(0, deadline - System.nanoTime());
        p.onExit().get(left, java.util.concurrent.TimeUnit.NANOSECONDS);
      } catch (Exception e) {
        p.destroyForcibly();
        report.add("pid " + p.pid() + " did not stop in time; killed");
        try {
          p.onExit().get(5, java.util.concurrent.TimeUnit.SECONDS);
        } catch (Exception ignored) {
          // reported below if still alive
        }
      }
    }
    for (ClusterFile.Host h : file.hosts()) {
      if (alive(h).isPresent()) {
        throw new CliException("agent " + h.id() + " (pid " + h.pid() + ") is still running");
      }
      deleteTree(Path.of(h.ramDir()));
    }
    try {
      Files.deleteIfExists(dir.resolve(ClusterFile.NAME));
    } catch (IOException e) {
      report.add("cannot remove " + dir.resolve(ClusterFile.NAME) + ": " + e.getMessage());
    }
    return report;
  }

  /**
   * Where the agents' RAM directories go: FERRY_RAM_ROOT, or /dev/shm/ferry. It must be tmpfs;
   * a tmpfs mounted with huge=within_size makes page I/O about three times cheaper.
   */
  static String ramRoot() {
    String root = System.getenv("FERRY_RAM_ROOT");
    return root == null || root.isBlank() ? "/dev/shm/ferry" : root;
  }

  public static AgentClient client(ClusterFile.Host h, Duration deadline) {
    return new AgentClient(Transport.plaintext(), h.id(), Endpoint.parse(h.endpoint()), deadline);
  }

  /** Opens clients to every host; callers close them. */
  public static List<AgentClient> clients(ClusterFile file, Duration deadline) {
    List<AgentClient> out = new ArrayList<>();
    for (ClusterFile.Host h : file.hosts()) {
      out.add(client(h, deadline));
    }
    return out;
  }

  /** The host that has {@code vm}, or a clear error. */
  public static ClusterFile.Host locate(ClusterFile file, String vm, Duration deadline) {
    List<String> unreachable = new ArrayList<>();
    for (ClusterFile.Host h : file.hosts()) {
      try (AgentClient c = client(h, deadline)) {
        var status = c.getVm(vm);
        if (status.getState() != dev.ferry.proto.vm.VmState.VM_STATE_INCOMING) {
          return h;
        }
      } catch (AgentCallException e) {
        if (e.unreachable()) {
          unreachable.add(h.id());
        }
      }
    }
    throw new CliException("no VM named '" + vm + "' in the cluster"
        + (unreachable.isEmpty() ? "" : " (unreachable: " + String.join(", ", unreachable) + ")"));
  }

  static String javaBinary() {
    return ProcessHandle.current().info().command().orElse(Path.of(System.getProperty("java.home"), "bin", "java").toString());
  }

  static String tail(Path file, int lines) {
    try {
      List<String> all = Files.readAllLines(file, StandardCharsets.UTF_8);
      return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
    } catch (IOException e) {
      return "(no log: " + e.getMessage() + ")";
    }
  }

  static void deleteTree(Path p) {
    if (!Files.exists(p)) {
      return;
    }
    try (Stream<Path> s = Files.walk(p)) {
      for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
        Files.deleteIfExists(q);
      }
    } catch (IOException e) {
      // best effort: tmpfs files of a dead agent
    }
  }
}
