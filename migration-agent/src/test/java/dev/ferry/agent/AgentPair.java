package dev.ferry.agent;

import dev.ferry.agent.client.AgentClient;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.TestDirs;
import dev.ferry.testing.Timing;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.stream.Stream;

/** Two real agents (sim driver) serving real gRPC on loopback TCP, in this JVM. */
final class AgentPair implements AutoCloseable {
  final Path root;
  final Agent a;
  final Agent b;
  final AgentClient clientA;
  final AgentClient clientB;

  AgentPair(Transport transportA) throws IOException {
    root = TestDirs.ramDir("pair");
    a = start("host-a", transportA);
    b = start("host-b", Transport.plaintext());
    clientA = new AgentClient(Transport.plaintext(), "host-a", a.endpoint(), Duration.ofSeconds(30));
    clientB = new AgentClient(Transport.plaintext(), "host-b", b.endpoint(), Duration.ofSeconds(30));
  }

  AgentPair() throws IOException {
    this(Transport.plaintext());
  }

  private Agent start(String host, Transport transport) throws IOException {
    PreCopySender.Timeouts t = PreCopySender.Timeouts.defaults().scaled(Timing.multiplier() / 4);
    AgentConfig config = new AgentConfig(host, Endpoint.parse("127.0.0.1:0"), root.resolve(host + "-data"),
        root.resolve(host + "-ram"), null, transport, t, Timing.seconds(10));
    return new Agent(config, new SimDriver(), CommitProvider.local()).start();
  }

  static VmSpec busyGuest(String name, long memory, long pagesPerSecond) {
    return VmSpec.newBuilder().setName(name).setMemoryBytes(memory).setVcpus(1)
        .setWorkload(Workload.newBuilder().setDirtyRatePagesPerSec(pagesPerSecond).setWorkingSetBytes(memory / 4)
            .setHotSetBytes(memory / 32).setHotPercent(50).setPattern(Pattern.PATTERN_COMPRESSIBLE))
        .build();
  }

  void createRunning(VmSpec spec) {
    clientA.createVm(CreateVmRequest.newBuilder().setSpec(spec).setStart(true).build());
  }

  long ramFiles(Agent agent) throws IOException {
    Path dir = root.resolve(agent.hostId() + "-ram");
    if (!Files.isDirectory(dir)) {
      return 0;
    }
    try (Stream<Path> s = Files.list(dir)) {
      return s.filter(p -> p.getFileName().toString().endsWith(".ram")).count();
    }
  }

  @Override
  public void close() throws IOException {
    clientA.close();
    clientB.close();
    a.close();
    b.close();
    TestDirs.deleteTree(root);
  }
}
