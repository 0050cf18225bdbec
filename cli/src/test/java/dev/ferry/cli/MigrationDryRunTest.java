package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.proto.coordinator.HostView;
import dev.ferry.proto.coordinator.VmView;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** `ferry migrate --dry-run` over hand-made views of a VM and hosts with different QEMUs. */
class MigrationDryRunTest {
    private static final long GIB = 1L << 30;

    private static HostView host(String id, String version, List<String> cpus, boolean precopy) {
        return HostView.newBuilder()
                .setId(id)
                .setAlive(true)
                .setMemoryBytes(8 * GIB)
                .setVcpus(8)
                .setPrecopy(precopy)
                .setDirtyTracking(precopy ? "available" : "unavailable: old kernel")
                .setQemuVersion(version)
                .setAccelerator("tcg")
                .addAllMachineTypes(List.of("pc", "pc-i440fx-7.2"))
                .addAllCpuModels(cpus)
                .build();
    }

    private static final VmView VM = VmView.newBuilder()
            .setSpec(VmSpec.newBuilder()
                    .setName("g")
                    .setMemoryBytes(GIB)
                    .setVcpus(2)
                    .setMachine("pc-i440fx-7.2")
                    .setCpuModel("Westmere"))
            .setOwner("a")
            .setOwnerAlive(true)
            .setState(VmState.VM_STATE_RUNNING)
            .build();

    private static final List<HostView> HOSTS = List.of(
            host("a", "7.2.22", List.of("Nehalem", "Westmere"), true),
            host("b", "7.2.22", List.of("Nehalem"), true),
            host("c", "7.2.22", List.of("Nehalem", "Westmere"), true));

    @Test
    void aTargetWithoutTheModelFailsItsCheckWithTheReason() {
        MigrationDryRun d = MigrationDryRun.of(VM, HOSTS, "b", TransferMode.TRANSFER_MODE_PRECOPY);
        assertFalse(d.allowed());
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        d.print(new PrintStream(b, true, StandardCharsets.UTF_8));
        String out = b.toString(StandardCharsets.UTF_8);
        assertTrue(out.contains("pass  memory: b has 8192 MiB free, the VM needs 1024 MiB"), out);
        assertTrue(out.contains("FAIL  CPU model: QEMU 7.2.22 (tcg) cannot run CPU model Westmere"), out);
        assertTrue(out.lines().toList().getLast().startsWith("refused: "), out);
        assertEquals(false, d.json().get("allowed"));
    }

    @Test
    void withoutATargetPlacementChoosesACapableHost() {
        MigrationDryRun d = MigrationDryRun.of(VM, HOSTS, null, TransferMode.TRANSFER_MODE_PRECOPY);
        assertTrue(d.allowed(), d.checks().toString());
        assertEquals("c", d.target());
    }

    @Test
    void precopyFromASourceThatCannotTrackWritesFailsAndQemuNativePasses() {
        List<HostView> hosts = List.of(
                host("a", "7.2.22", List.of("Westmere"), false), host("c", "7.2.22", List.of("Westmere"), true));
        assertFalse(MigrationDryRun.of(VM, hosts, "c", TransferMode.TRANSFER_MODE_PRECOPY)
                .allowed());
        assertTrue(MigrationDryRun.of(VM, hosts, "c", TransferMode.TRANSFER_MODE_HYPERVISOR_NATIVE)
                .allowed());
    }

    @Test
    void aStoppedVmOrItsOwnHostIsRefused() {
        VmView stopped = VM.toBuilder().setState(VmState.VM_STATE_STOPPED).build();
        assertFalse(MigrationDryRun.of(stopped, HOSTS, "c", TransferMode.TRANSFER_MODE_PRECOPY)
                .allowed());
        assertFalse(MigrationDryRun.of(VM, HOSTS, "a", TransferMode.TRANSFER_MODE_PRECOPY)
                .allowed());
        assertFalse(MigrationDryRun.of(VM, HOSTS, "nowhere", TransferMode.TRANSFER_MODE_PRECOPY)
                .allowed());
    }

    /** Pins the merge's hole: the dry run said yes to a target without the VM's bridge, which placement refuses. */
    @Test
    void aTargetWithoutTheVmsBridgeFailsItsBridgeCheckAndPlacementSkipsIt() {
        VmView withNic = VM.toBuilder()
                .setSpec(VM.getSpec().toBuilder()
                        .addNics(dev.ferry.proto.vm.Nic.newBuilder()
                                .setBridge("vmbr0")
                                .setMac("52:54:00:00:00:01")))
                .build();
        List<HostView> hosts =
                List.of(HOSTS.get(0).toBuilder().addBridges("vmbr0").build(), HOSTS.get(1), HOSTS.get(2));
        MigrationDryRun d = MigrationDryRun.of(withNic, hosts, "c", TransferMode.TRANSFER_MODE_PRECOPY);
        assertFalse(d.allowed());
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        d.print(new PrintStream(b, true, StandardCharsets.UTF_8));
        assertTrue(b.toString(StandardCharsets.UTF_8).contains("FAIL  bridges: c has no bridge vmbr0"), b.toString());
        // Without --to, no host but the owner has vmbr0: nowhere to go, and the dry run says so.
        assertFalse(MigrationDryRun.of(withNic, hosts, null, TransferMode.TRANSFER_MODE_PRECOPY)
                .allowed());
        MigrationDryRun ok = MigrationDryRun.of(
                withNic,
                List.of(
                        hosts.get(0),
                        hosts.get(1),
                        hosts.get(2).toBuilder().addBridges("vmbr0").build()),
                "c",
                TransferMode.TRANSFER_MODE_PRECOPY);
        assertTrue(ok.allowed());
    }
}
