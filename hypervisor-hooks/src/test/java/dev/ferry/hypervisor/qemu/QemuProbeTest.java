package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.hypervisor.HypervisorProfile;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** What a host registers about its QEMU: parsed from QMP's answers, and probed from the real one here. */
class QemuProbeTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void onlyModelsWithNothingUnavailableAreOfferedAndAliasesResolve() throws Exception {
        JsonNode version = JSON.readTree("{\"qemu\":{\"major\":7,\"minor\":2,\"micro\":22},\"package\":\"Debian\"}");
        JsonNode machines = JSON.readTree("[{\"name\":\"pc-i440fx-7.2\",\"alias\":\"pc\",\"is-default\":true},"
                + "{\"name\":\"pc-q35-7.2\",\"alias\":\"q35\"},{\"name\":\"pc-i440fx-7.1\"}]");
        JsonNode cpus = JSON.readTree("[{\"name\":\"Nehalem\",\"unavailable-features\":[]},"
                + "{\"name\":\"Icelake-Server\",\"unavailable-features\":[\"avx512f\",\"pcid\"]},"
                + "{\"name\":\"mystery\"}]");
        HypervisorProfile p = QemuProbe.profile(version, machines, cpus, "tcg");
        assertEquals("7.2.22", p.version());
        assertEquals("tcg", p.accelerator());
        assertEquals(List.of("Nehalem"), p.cpuModels());
        assertEquals(List.of("pc", "pc-i440fx-7.1", "pc-i440fx-7.2", "pc-q35-7.2", "q35"), p.machineTypes());
        assertEquals(Map.of("pc", "pc-i440fx-7.2", "q35", "pc-q35-7.2"), p.machineAliases());
    }

    /** The facts docs/ARCHITECTURE.md's choice of baseline rests on, re-checked on this host's QEMU. */
    @Test
    void thisQemuRunsTheBaselineUnderItsAcceleratorButNotIcelake() throws Exception {
        QemuTestSupport.requireQemu();
        Accel accel = Accel.detect().accel();
        HypervisorProfile p = QemuProbe.probe(QemuTestSupport.QEMU, accel, Duration.ofSeconds(30));
        assertTrue(p.cpuModels().contains("Nehalem"), p.cpuModels().toString());
        assertTrue(p.machineTypes().contains("pc"), p.machineTypes().toString());
        assertTrue(
                p.machineAliases().get("pc").startsWith("pc-i440fx-"),
                p.machineAliases().toString());
        assertFalse(p.machineTypes().contains("pc-i440fx-9.2"), "QEMU " + p.version() + " has no 9.2 machine");
        if (accel == Accel.TCG) {
            assertFalse(p.cpuModels().contains("Icelake-Server"), p.cpuModels().toString());
            assertEquals("tcg", p.accelerator());
        }
    }
}
