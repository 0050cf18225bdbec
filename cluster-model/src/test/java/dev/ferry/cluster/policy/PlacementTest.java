package dev.ferry.cluster.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;

import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

class PlacementTest {
    static final long GIB = 1L << 30;

    static Placement.Host host(String id, long freeGib, String... groups) {
        return new Placement.Host(id, true, false, 8 * GIB, 8, (8 - freeGib) * GIB, 0, 0, Set.of(groups));
    }

    static Placement.Demand vm(String name, long gib, String group) {
        return new Placement.Demand(name, gib * GIB, 1, group);
    }

    static String placed(Placement.Decision d) {
        return assertInstanceOf(Placement.Placed.class, d).host();
    }

    @Test
    void theHostWithTheMostMemoryLeftWins() {
        assertEquals(
                "b",
                placed(Placement.place(vm("v", 1, ""), List.of(host("a", 2), host("b", 5), host("c", 3)), Set.of())));
    }

    @Test
    void deadHostsHostsInMaintenanceAndExcludedHostsNeverGetAVm() {
        Placement.Host dead = new Placement.Host("a", false, false, 8 * GIB, 8, 0, 0, 0, Set.of());
        Placement.Host maintenance = new Placement.Host("b", true, true, 8 * GIB, 8, 0, 0, 0, Set.of());
        Placement.Decision d =
                Placement.place(vm("v", 1, ""), List.of(dead, maintenance, host("c", 8), host("d", 1)), Set.of("c"));
        assertEquals("d", placed(d));
        Placement.NoHost none = assertInstanceOf(
                Placement.NoHost.class,
                Placement.place(vm("v", 1, ""), List.of(dead, maintenance, host("c", 8)), Set.of("c")));
        assertEquals("no host fits v (1024 MiB, 1 vCPU): a is down, b is in maintenance", none.reason());
    }

    @Test
    void aVmThatFitsNowhereIsRefusedWithWhatEachHostHas() {
        Placement.NoHost none = assertInstanceOf(
                Placement.NoHost.class,
                Placement.place(vm("big", 4, ""), List.of(host("a", 2), host("b", 3)), Set.of()));
        assertEquals("no host fits big (4096 MiB, 1 vCPU): a has 2048 MiB free, b has 3072 MiB free", none.reason());
        Placement.Host noCpu = new Placement.Host("c", true, false, 8 * GIB, 2, 0, 2, 2, Set.of());
        assertEquals(
                "no host fits v (1024 MiB, 1 vCPU): c has 0 vCPUs free",
                assertInstanceOf(Placement.NoHost.class, Placement.place(vm("v", 1, ""), List.of(noCpu), Set.of()))
                        .reason());
    }

    @Test
    void antiAffinityKeepsAGroupApartWhenAnotherHostFits() {
        // b has more room but already runs a member of the group.
        assertEquals(
                "a", placed(Placement.place(vm("db2", 1, "db"), List.of(host("a", 2), host("b", 6, "db")), Set.of())));
    }

    @Test
    void antiAffinityYieldsWhenOnlyTheGroupsHostFits() {
        assertEquals(
                "b", placed(Placement.place(vm("db2", 3, "db"), List.of(host("a", 2), host("b", 6, "db")), Set.of())));
    }

    @Test
    void tiesGoToTheHostWithFewerVmsThenToTheLowerId() {
        Placement.Host a = new Placement.Host("a", true, false, 8 * GIB, 8, 0, 0, 3, Set.of());
        Placement.Host b = new Placement.Host("b", true, false, 8 * GIB, 8, 0, 0, 1, Set.of());
        Placement.Host c = new Placement.Host("c", true, false, 8 * GIB, 8, 0, 0, 1, Set.of());
        assertEquals("b", placed(Placement.place(vm("v", 1, ""), List.of(c, a, b), Set.of())));
    }

    @Test
    void aVmWithNicsGoesOnlyToAHostWithItsBridgesAndTheRefusalNamesTheMissingOne() {
        Placement.Host roomy = new Placement.Host(
                "a", true, false, 8 * GIB, 8, 0, 0, 0, Set.of(), Compatibility.Hypervisor.ANY, Set.of("br1"));
        Placement.Host bridged = new Placement.Host(
                "b",
                true,
                false,
                8 * GIB,
                8,
                4 * GIB,
                0,
                1,
                Set.of(),
                Compatibility.Hypervisor.ANY,
                Set.of("vmbr0", "br1"));
        Placement.Demand web = new Placement.Demand("web", GIB, 1, "", Set.of("vmbr0"));
        assertEquals("b", placed(Placement.place(web, List.of(roomy, bridged), Set.of())));
        Placement.NoHost none =
                assertInstanceOf(Placement.NoHost.class, Placement.place(web, List.of(roomy, bridged), Set.of("b")));
        assertEquals("no host fits web (1024 MiB, 1 vCPU): a has no bridge vmbr0", none.reason());
        // Placed again, the host keeps its bridges.
        assertEquals(Set.of("vmbr0", "br1"), bridged.with(web).without(GIB, 1).bridges());
    }
}
