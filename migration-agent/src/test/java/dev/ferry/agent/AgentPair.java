package dev.ferry.agent;

import dev.ferry.agent.client.AgentClient;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.qemu.QemuDriver;
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

    /** Makes the hypervisor driver of one host, given that host's scratch directory. */
    @FunctionalInterface
    interface DriverFactory {
        HypervisorDriver create(Path hostDir) throws Exception;
    }

    private final DriverFactory drivers;
    private final java.util.function.UnaryOperator<AgentConfig> tune;

    AgentPair(Transport transportA) throws IOException {
        this(transportA, dir -> new SimDriver());
    }

    AgentPair(Transport transportA, DriverFactory drivers) throws IOException {
        this(transportA, drivers, c -> c);
    }

    /** Two agents whose settings {@code tune} changes (it sees each host's, by its host id). */
    AgentPair(Transport transportA, DriverFactory drivers, java.util.function.UnaryOperator<AgentConfig> tune)
            throws IOException {
        this(transportA, Transport.plaintext(), Transport.plaintext(), drivers, tune);
    }

    /** Two agents with transports of their own (mutual TLS), ordered through {@code operator}'s. */
    AgentPair(
            Transport transportA,
            Transport transportB,
            Transport operator,
            DriverFactory drivers,
            java.util.function.UnaryOperator<AgentConfig> tune)
            throws IOException {
        this.drivers = drivers;
        this.tune = tune;
        root = TestDirs.ramDir("pair");
        a = start("host-a", transportA);
        b = start("host-b", transportB);
        clientA = new AgentClient(operator, "host-a", a.endpoint(), Duration.ofSeconds(30));
        clientB = new AgentClient(operator, "host-b", b.endpoint(), Duration.ofSeconds(30));
    }

    AgentPair() throws IOException {
        this(Transport.plaintext());
    }

    /** Two agents running real QEMU. */
    static AgentPair qemu() throws IOException {
        return qemu(QemuDriver.Settings.defaults());
    }

    /** Two agents running real QEMU with these driver settings. */
    static AgentPair qemu(QemuDriver.Settings s) throws IOException {
        // Short QMP timeouts so a frozen QEMU fails a step in seconds, not tens of seconds.
        QemuDriver.Settings quick = s.withQmpTimeout(Timing.seconds(3));
        return new AgentPair(Transport.plaintext(), dir -> QemuDriver.create(quick, dir));
    }

    Path ramDir(Agent agent) {
        return root.resolve(agent.hostId() + "-ram");
    }

    /** Pids of live processes whose command line mentions {@code dir} (QEMUs using a host's RAM files). */
    static java.util.List<Long> processesUsing(Path dir) {
        java.util.List<Long> pids = new java.util.ArrayList<>();
        String needle = dir.toString();
        ProcessHandle.allProcesses().forEach(p -> {
            try {
                byte[] raw = Files.readAllBytes(Path.of("/proc", Long.toString(p.pid()), "cmdline"));
                String cmd = new String(raw, java.nio.charset.StandardCharsets.UTF_8);
                if (cmd.contains(needle) && cmd.contains("qemu-system") && p.isAlive()) {
                    pids.add(p.pid());
                }
            } catch (IOException | RuntimeException e) {
                // gone meanwhile
            }
        });
        return pids;
    }

    private Agent start(String host, Transport transport) throws IOException {
        PreCopySender.Timeouts t = PreCopySender.Timeouts.defaults().scaled(Timing.multiplier() / 4);
        AgentConfig config = tune.apply(new AgentConfig(
                host,
                Endpoint.parse("127.0.0.1:0"),
                root.resolve(host + "-data"),
                root.resolve(host + "-ram"),
                null,
                transport,
                t,
                Timing.seconds(10)));
        HypervisorDriver driver;
        try {
            driver = drivers.create(root.resolve(host + "-native"));
        } catch (Exception e) {
            throw new IOException("cannot create the driver of " + host + ": " + e.getMessage(), e);
        }
        return new Agent(config, driver, CommitProvider.local()).start();
    }

    static VmSpec busyGuest(String name, long memory, long pagesPerSecond) {
        return VmSpec.newBuilder()
                .setName(name)
                .setMemoryBytes(memory)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder()
                        .setDirtyRatePagesPerSec(pagesPerSecond)
                        .setWorkingSetBytes(memory / 4)
                        .setHotSetBytes(memory / 32)
                        .setHotPercent(50)
                        .setPattern(Pattern.PATTERN_COMPRESSIBLE))
                .build();
    }

    void createRunning(VmSpec spec) {
        clientA.createVm(
                CreateVmRequest.newBuilder().setSpec(spec).setStart(true).build());
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

    /** Run directories in {@code agent}'s data directory (one per VM it holds or receives). */
    long runDirs(Agent agent) throws IOException {
        Path dir = root.resolve(agent.hostId() + "-data").resolve("vms");
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(Files::isDirectory).count();
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
