package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import org.junit.jupiter.api.Test;

class QemuDemoTest {
    @Test
    void demoWithTheQemuDriverMovesARealGuest() throws Exception {
        QemuTestSupport.requireQemu();
        QemuTestSupport.requireDirtyTracking();
        CliRun r = CliRun.of("demo", "--driver", "qemu", "--memory", "256M", "--json");
        assertEquals(0, r.exit(), r.err());
        JsonNode out = Json.MAPPER.readTree(r.out());
        JsonNode m = out.get("migrations").get(0);
        assertEquals("completed", m.get("status").asText());
        assertTrue(m.get("memoryVerified").asBoolean());
        DemoFacts.assertFacts(out);
    }
}
