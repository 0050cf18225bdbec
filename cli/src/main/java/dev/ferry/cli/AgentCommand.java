package dev.ferry.cli;

import dev.ferry.agent.Agent;
import dev.ferry.agent.AgentConfig;
import dev.ferry.agent.CommitProvider;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.rpc.Endpoint;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "agent", description = "Run the per-host agent daemon (until SIGTERM or SIGINT).")
final class AgentCommand implements java.util.concurrent.Callable<Integer> {
  @Option(names = "--host-id", required = true, description = "This host's name in the cluster.")
  String hostId;

  @Option(names = "--listen", required = true, paramLabel = "ADDR", description = "HOST:PORT to serve on (port 0 picks one).")
  String listen;

  @Option(names = "--data-dir", required = true, paramLabel = "DIR", description = "Per-VM run directories (logs, sockets).")
  Path dataDir;

  @Option(names = "--ram-dir", paramLabel = "DIR", description = "Guest RAM files, on tmpfs (default: /dev/shm/ferry/HOST-ID).")
  Path ramDir;

  @Option(names = "--driver", defaultValue = "sim", description = "Hypervisor driver: sim or qemu (default: ${DEFAULT-VALUE}).")
  String driver;

  @Option(names = "--endpoint-file", paramLabel = "FILE", description = "Write the bound HOST:PORT here once serving.")
  Path endpointFile;

  @Override
  public Integer call() throws Exception {
    Endpoint endpoint = Endpoint.parse(listen);
    AgentConfig config = AgentConfig.of(hostId, endpoint, dataDir.toAbsolutePath());
    if (ramDir != null) {
      config = config.withRamDir(ramDir.toAbsolutePath());
    }
    if (endpointFile != null) {
      config = config.withEndpointFile(endpointFile.toAbsolutePath());
    }
    HypervisorDriver hypervisor = Drivers.create(driver, config.dataDir());
    Agent agent = new Agent(config, hypervisor, CommitProvider.local());
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      agent.close();
      stopped.countDown();
    }, "ferry-agent-shutdown"));
    try {
      agent.start();
    } catch (java.io.IOException e) {
      agent.close();
      throw new CliException("agent " + hostId + " cannot start: " + e.getMessage());
    }
    stopped.await();
    return 0;
  }
}
