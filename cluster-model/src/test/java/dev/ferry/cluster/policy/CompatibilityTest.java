package dev.ferry.cluster.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Which hosts can run a VM: records describing different hosts (QEMU versions, accelerators). */
class CompatibilityTest {
    private static final long GIB = 1L << 30;

    /** QEMU 7.2 under TCG, as this repository's CI hosts register (QMP query-cpu-definitions). */
    static final Compatibility.Hypervisor QEMU72_TCG = new Compatibility.Hypervisor(
            "7.2.22",
            "tcg",
            Set.of("pc", "pc-i440fx-7.2", "pc-i440fx-7.1", "q35", "pc-q35-7.2"),
            Set.of("qemu64", "kvm64", "Nehalem", "Westmere", "Penryn"));
    /** QEMU 9.2 under KVM on an Ice Lake host: newer machine types, the host's models. */
    static final Compatibility.Hypervisor QEMU92_KVM_ICELAKE = new Compatibility.Hypervisor(
            "9.2.0",
            "kvm",
            Set.of("pc", "pc-i440fx-9.2", "pc-i440fx-7.2", "q35", "pc-q35-9.2", "pc-q35-7.2"),
            Set.of("qemu64", "Nehalem", "Westmere", "Skylake-Server", "Icelake-Server"));

    private static Placement.Host host(String id, Compatibility.Hypervisor hv) {
        return new Placement.Host(id, true, false, 8 * GIB, 8, 0, 0, 0, Set.of(), hv, Set.of());
    }

    private static Placement.Demand vm(String machine, String cpu) {
        return new Placement.Demand("vm1", GIB, 2, "", machine, cpu);
    }

    @Test
    void theBaselineModelRunsOnEveryKindOfHost() {
        for (Compatibility.Hypervisor hv : List.of(QEMU72_TCG, QEMU92_KVM_ICELAKE)) {
            assertNull(Compatibility.hypervisorRefusal("pc-i440fx-7.2", Compatibility.BASELINE_CPU_MODEL, hv));
        }
    }

    @Test
    void placementSkipsAHostWhoseQemuCannotRunTheCpuModelAndSaysWhy() {
        Placement.Decision d = Placement.place(
                vm("pc-i440fx-7.2", "Icelake-Server"),
                List.of(host("tcg-1", QEMU72_TCG), host("kvm-1", QEMU92_KVM_ICELAKE)),
                Set.of());
        assertEquals(new Placement.Placed("kvm-1"), d);

        Placement.NoHost none = assertInstanceOf(
                Placement.NoHost.class,
                Placement.place(vm("pc-i440fx-7.2", "Icelake-Server"), List.of(host("tcg-1", QEMU72_TCG)), Set.of()));
        assertTrue(
                none.reason().contains("tcg-1: QEMU 7.2.22 (tcg) cannot run CPU model Icelake-Server"), none.reason());
    }

    @Test
    void placementSkipsAHostWhoseQemuLacksTheMachineType() {
        Placement.NoHost none = assertInstanceOf(
                Placement.NoHost.class,
                Placement.place(vm("pc-i440fx-9.2", "Nehalem"), List.of(host("tcg-1", QEMU72_TCG)), Set.of()));
        assertTrue(none.reason().contains("tcg-1: QEMU 7.2.22 (tcg) has no machine type pc-i440fx-9.2"), none.reason());
        assertEquals(
                new Placement.Placed("kvm-1"),
                Placement.place(
                        vm("pc-i440fx-9.2", "Nehalem"),
                        List.of(host("tcg-1", QEMU72_TCG), host("kvm-1", QEMU92_KVM_ICELAKE)),
                        Set.of()));
    }

    @Test
    void modelOptionsAfterTheNameAreQemusAndTheModelItselfIsChecked() {
        assertNull(Compatibility.hypervisorRefusal("pc", "Nehalem,+aes", QEMU72_TCG));
        assertTrue(Compatibility.hypervisorRefusal("pc", "Icelake-Server,-avx512f", QEMU72_TCG) != null);
    }

    @Test
    void specsWithoutACpuModelAreQemusDefaultQemu64AndWithoutAMachinePc() {
        assertTrue(Compatibility.cpuCheck("", QEMU72_TCG).ok());
        assertTrue(Compatibility.cpuCheck("", QEMU72_TCG).detail().contains("qemu64"));
        assertTrue(Compatibility.machineCheck("", QEMU72_TCG).detail().contains("has pc"));
    }

    @Test
    void simHostsAndHostsThatReportNothingAreNotChecked() {
        assertNull(Compatibility.hypervisorRefusal("pc-i440fx-9.2", "Icelake-Server", Compatibility.Hypervisor.ANY));
        Compatibility.Hypervisor silent = new Compatibility.Hypervisor("", "", Set.of(), Set.of());
        Compatibility.Check c = Compatibility.cpuCheck("Icelake-Server", silent);
        assertTrue(c.ok());
        assertTrue(c.detail().contains("reports no hypervisor details"), c.detail());
    }

    @Test
    void aVmCreatedAsPcIsPinnedToTheFirstHostsVersionedMachine() {
        Map<String, String> aliases72 = Map.of("pc", "pc-i440fx-7.2", "q35", "pc-q35-7.2");
        assertEquals("pc-i440fx-7.2", Compatibility.pinMachine("pc", aliases72));
        assertEquals("pc-i440fx-7.2", Compatibility.pinMachine("", aliases72));
        assertEquals("pc-q35-7.2", Compatibility.pinMachine("q35", aliases72));
        assertEquals("pc-i440fx-7.1", Compatibility.pinMachine("pc-i440fx-7.1", aliases72));
        // A sim host resolves nothing: the spec stays as it was.
        assertEquals("", Compatibility.pinMachine("", Map.of()));
        // Pinned on 7.2, the VM may go to a 9.2 host, which still has pc-i440fx-7.2; the other way
        // round, a VM pinned to 9.2's machine cannot come back to 7.2.
        assertNull(Compatibility.hypervisorRefusal("pc-i440fx-7.2", "Nehalem", QEMU92_KVM_ICELAKE));
        assertTrue(Compatibility.hypervisorRefusal("pc-i440fx-9.2", "Nehalem", QEMU72_TCG) != null);
    }

    @Test
    void migrationChecksListEveryCheckWithItsReason() {
        Compatibility.MigrationTarget small =
                new Compatibility.MigrationTarget("h2", true, false, GIB / 2, 1, QEMU72_TCG, true);
        List<Compatibility.Check> checks =
                Compatibility.migrationChecks(GIB, 2, "pc-i440fx-7.2", "Icelake-Server", small, true, true, "");
        assertEquals(
                List.of(
                        "target alive",
                        "not in maintenance",
                        "memory",
                        "vCPUs",
                        "machine type",
                        "CPU model",
                        "dirty tracking"),
                checks.stream().map(Compatibility.Check::name).toList());
        assertEquals(
                List.of(true, true, false, false, true, false, true),
                checks.stream().map(Compatibility.Check::ok).toList());
        String why = Compatibility.refusal(checks);
        assertTrue(why.contains("h2 has 512 MiB free, the VM needs 1024 MiB"), why);
        assertTrue(why.contains("cannot run CPU model Icelake-Server"), why);
    }

    @Test
    void precopyFromASourceThatCannotTrackWritesIsRefusedAndQemuNativeIsNot() {
        Compatibility.MigrationTarget ok =
                new Compatibility.MigrationTarget("h2", true, false, 8 * GIB, 8, QEMU72_TCG, true);
        List<Compatibility.Check> precopy =
                Compatibility.migrationChecks(GIB, 1, "pc", "Nehalem", ok, true, false, "unavailable: old kernel");
        assertFalse(precopy.getLast().ok());
        assertTrue(
                precopy.getLast().detail().contains("--mode qemu-native"),
                precopy.getLast().detail());
        assertNull(Compatibility.refusal(
                Compatibility.migrationChecks(GIB, 1, "pc", "Nehalem", ok, false, false, "unavailable")));
    }

    @Test
    void aFailedHostsVmsRestartOnlyOnCompatibleHostsAndWaitWithTheReasonOtherwise() {
        RestartPolicy.Plan plan = RestartPolicy.plan(
                List.of(
                        new RestartPolicy.Candidate("base", 0, GIB, 1, "", "pc-i440fx-7.2", "Nehalem"),
                        new RestartPolicy.Candidate("ice", 0, GIB, 1, "", "pc-i440fx-7.2", "Icelake-Server")),
                List.of(host("tcg-1", QEMU72_TCG)),
                Set.of());
        assertEquals(Map.of("base", "tcg-1"), plan.placed());
        assertTrue(
                plan.waiting().get("ice").contains("cannot run CPU model Icelake-Server"),
                plan.waiting().toString());
    }
}
