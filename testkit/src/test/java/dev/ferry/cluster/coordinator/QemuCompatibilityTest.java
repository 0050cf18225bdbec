package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cli.Main;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.hypervisor.qemu.QemuDriver;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.proto.coordinator.HostView;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.testing.Timing;
import dev.ferry.testkit.TestCluster;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/**
 * Hosts whose QEMU cannot run a VM, on a real cluster (ZooKeeper, coordinator, gRPC, agents with
 * the qemu driver). The "other QEMU" is a real one: host {@code i386} runs qemu-system-i386 (the
 * same QEMU 7.2 package, a 32-bit target), whose TCG lacks long mode, so QMP reports Nehalem (the
 * baseline) with {@code syscall} and {@code lm} unavailable. No wrapper, no edited records: the
 * refusals come from what each agent's own QEMU answered at registration.
 */
class QemuCompatibilityTest {
    private TestCluster cluster;
    private CoordinatorClient client;

    @BeforeEach
    void up() throws Exception {
        QemuTestSupport.requireQemu();
        QemuTestSupport.requireDirtyTracking();
        cluster = TestCluster.start();
        cluster.coordinator(Duration.ofMillis(500));
        for (String host : List.of("x86-1", "x86-2")) {
            cluster.agent(
                    host,
                    Duration.ofSeconds(6),
                    false,
                    QemuDriver.create(QemuDriver.Settings.defaults(), cluster.root.resolve(host + "-native")));
        }
        cluster.agent(
                "i386",
                Duration.ofSeconds(6),
                false,
                QemuDriver.create(
                        QemuDriver.Settings.defaults().withBinary(Path.of("qemu-system-i386")),
                        cluster.root.resolve("i386-native")));
        client = cluster.client();
    }

    @AfterEach
    void down() throws Exception {
        if (cluster != null) {
            cluster.close();
        }
    }

    /** The ferry CLI in this JVM against the test cluster's ZooKeeper, with what it printed. */
    private record Cli(int exit, String out, String err) {}

    private synchronized Cli ferry(String... args) {
        List<String> all = new ArrayList<>(List.of(args));
        all.addAll(List.of("--zk", cluster.zk.getConnectString(), "--cluster-name", TestCluster.NAME, "--insecure"));
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            CommandLine cmd = Main.commandLine();
            cmd.setOut(new PrintWriter(System.out, true));
            cmd.setErr(new PrintWriter(System.err, true));
            int code = cmd.execute(all.toArray(String[]::new));
            return new Cli(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    private HostView host(String id) {
        return client.hosts().stream()
                .filter(h -> h.getId().equals(id))
                .findFirst()
                .orElseThrow();
    }

    private VmView vm(String name) {
        return client.vms(true).stream()
                .filter(v -> v.getSpec().getName().equals(name))
                .findFirst()
                .orElseThrow();
    }

    private long ramFiles(String host) throws IOException {
        Path dir = cluster.root.resolve(host + "-ram");
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".ram")).count();
        }
    }

    @Test
    void aMigrationToAHostWhoseQemuCannotRunTheVmsCpuModelIsRefusedBeforeItStarts() throws Exception {
        HostView x86 = host("x86-1");
        HostView i386 = host("i386");
        assertTrue(x86.getCpuModelsList().contains("Nehalem"), x86.toString());
        assertFalse(
                i386.getCpuModelsList().contains("Nehalem"),
                i386.getCpuModelsList().toString());
        assertEquals(x86.getQemuVersion(), i386.getQemuVersion(), "the same QEMU release, another target");
        assertEquals("tcg", x86.getAccelerator());
        assertEquals("pc-i440fx-7.2", x86.getMachineAliasesMap().get("pc"));

        VmSpec spec = VmSpec.newBuilder()
                .setSchemaVersion(1)
                .setName("g")
                .setMemoryBytes(64L << 20)
                .setVcpus(1)
                .setWorkload(TestCluster.spec("g", 64L << 20, 1000).getWorkload())
                .build();
        VmView created = cluster.create(client, spec, "x86-1");
        assertEquals("Nehalem", created.getSpec().getCpuModel(), "the baseline is recorded");
        assertEquals("pc-i440fx-7.2", created.getSpec().getMachine(), "pc is pinned to what x86-1 resolved");
        Timing.await("the guest's heartbeat", Duration.ofSeconds(30), () -> vm("g").getHeartbeat() >= 2);

        Cli dry = ferry("migrate", "g", "--to", "i386", "--dry-run");
        assertEquals(1, dry.exit(), dry.out() + dry.err());
        assertTrue(dry.out().contains("FAIL  CPU model: QEMU 7.2"), dry.out());
        assertTrue(dry.out().contains("cannot run CPU model Nehalem"), dry.out());
        assertTrue(dry.out().contains("pass  machine type"), dry.out());
        Cli dryOk = ferry("migrate", "g", "--to", "x86-2", "--dry-run", "--json");
        assertEquals(0, dryOk.exit(), dryOk.out() + dryOk.err());
        assertTrue(dryOk.out().contains("\"allowed\" : true"), dryOk.out());

        long epoch = vm("g").getEpoch();
        Cli refused = ferry("migrate", "g", "--to", "i386");
        assertEquals(1, refused.exit(), refused.out() + refused.err());
        assertTrue(
                (refused.out() + refused.err()).contains("cannot run CPU model Nehalem"),
                refused.out() + refused.err());
        // Pins the refusal that said "the VM stays on " with no host: a refused intent had no source yet.
        assertTrue((refused.out() + refused.err()).contains("the VM stays on x86-1"), refused.out() + refused.err());
        VmView still = vm("g");
        assertEquals("x86-1", still.getOwner());
        assertEquals(epoch, still.getEpoch(), "nothing moved");
        assertEquals(VmState.VM_STATE_RUNNING, still.getState());
        assertEquals(0, ramFiles("i386"), "no RAM file, so no QEMU, on i386");
        long beat = still.getHeartbeat();
        Timing.await("the guest keeps counting on x86-1", Duration.ofSeconds(20), () -> vm("g").getHeartbeat() > beat);

        // Without --to, placement passes over i386 (first by name among equals) for the host that can run it.
        Cli moved = ferry("migrate", "g", "--json");
        assertEquals(0, moved.exit(), moved.out() + moved.err());
        assertEquals("x86-2", vm("g").getOwner());

        // A failover restart goes only to a host that can run the VM: with x86-2 gone, i386 would
        // come first among equals (by name), and x86-1 is where it must restart.
        cluster.agent("x86-2").close();
        Timing.await("g restarted on x86-1", Duration.ofSeconds(90), () -> {
            try {
                VmView v = vm("g");
                return v.getOwner().equals("x86-1") && v.getState() == VmState.VM_STATE_RUNNING;
            } catch (RuntimeException e) {
                return false;
            }
        });
        assertEquals(0, ramFiles("i386"), "nothing of g on i386");
    }

    @Test
    void aVmWhoseCpuModelOrMachineTypeNoHostRunsIsRefusedWithTheReasonForEachHost() {
        Cli ice = ferry("vm", "create", "ice", "--memory", "64M", "--cpu", "Icelake-Server");
        assertEquals(1, ice.exit(), ice.out() + ice.err());
        for (String h : List.of("i386", "x86-1", "x86-2")) {
            assertTrue(ice.err().contains(h + ": QEMU 7.2"), ice.err());
        }
        assertTrue(ice.err().contains("cannot run CPU model Icelake-Server"), ice.err());

        Cli future = ferry("vm", "create", "future", "--memory", "64M", "--machine", "pc-i440fx-9.2");
        assertEquals(1, future.exit(), future.out() + future.err());
        assertTrue(future.err().contains("has no machine type pc-i440fx-9.2"), future.err());
        assertTrue(client.vms(false).isEmpty(), "nothing was created");
    }
}
