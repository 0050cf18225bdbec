package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.proto.coordinator.HostView;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** `ferry host list` and `cluster status`: which hosts can run pre-copy, and why not. */
class HostTableTest {
    private static final HostView TRACKING = HostView.newBuilder()
            .setId("h1")
            .setAlive(true)
            .setPrecopy(true)
            .setDirtyTracking("available: userfaultfd WP async and PAGEMAP_SCAN")
            .setQemuVersion("7.2.22")
            .setAccelerator("tcg")
            .addMachineTypes("pc")
            .addMachineTypes("pc-i440fx-7.2")
            .putMachineAliases("pc", "pc-i440fx-7.2")
            .addCpuModels("Nehalem")
            .addCpuModels("Westmere")
            .build();
    private static final HostView OLD_KERNEL = HostView.newBuilder()
            .setId("h2")
            .setAlive(true)
            .setPrecopy(false)
            .setDirtyTracking("unavailable: this kernel lacks UFFD_FEATURE_WP_ASYNC")
            .build();

    private static String print(boolean json) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        HostCommand.printHosts(List.of(TRACKING, OLD_KERNEL), json, new PrintStream(b, true, StandardCharsets.UTF_8));
        return b.toString(StandardCharsets.UTF_8);
    }

    @Test
    void theTableSaysWhichHostsCanRunPrecopyAndWhyAHostCannot() {
        String out = print(false);
        assertTrue(out.lines().findFirst().orElseThrow().contains("PRECOPY"), out);
        assertTrue(out.contains("h2 cannot run pre-copy: unavailable: this kernel lacks UFFD_FEATURE_WP_ASYNC"), out);
        assertEquals(
                1, out.lines().filter(l -> l.contains("cannot run pre-copy")).count(), out);
    }

    @Test
    void theHypervisorIsTheLastColumnSoTheEarlierOnesKeepTheirPlaces() {
        List<String> lines = print(false).lines().toList();
        assertTrue(
                lines.get(0)
                        .matches(
                                "HOST +ALIVE +MAINTENANCE +ENDPOINT +MEMORY USED/TOTAL +VCPUS +PRECOPY +VMS +HYPERVISOR"),
                lines.get(0));
        assertTrue(lines.get(1).endsWith("qemu 7.2.22/tcg, 2 CPU models"), lines.get(1));
        assertTrue(lines.get(2).endsWith(" -"), lines.get(2));
    }

    @Test
    void theJsonCarriesWhatEachHostsQemuRuns() throws Exception {
        var h = Json.MAPPER.readTree(print(true)).get("hosts").get(0);
        assertEquals("7.2.22", h.get("qemuVersion").asText());
        assertEquals("tcg", h.get("accelerator").asText());
        assertEquals("pc-i440fx-7.2", h.get("machineAliases").get("pc").asText());
        assertEquals(2, h.get("cpuModels").size());
    }

    @Test
    void theJsonCarriesTheCapabilityAndTheFinding() throws Exception {
        var hosts = Json.MAPPER.readTree(print(true)).get("hosts");
        assertTrue(hosts.get(0).get("precopy").asBoolean());
        assertEquals(false, hosts.get(1).get("precopy").asBoolean());
        assertEquals(
                "unavailable: this kernel lacks UFFD_FEATURE_WP_ASYNC",
                hosts.get(1).get("dirtyTracking").asText());
    }
}
