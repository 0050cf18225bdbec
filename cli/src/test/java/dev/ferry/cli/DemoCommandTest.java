package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

class DemoCommandTest {
    @Test
    void demoMovesABusyVmDrainsAHostAndRestartsAKilledHostsVmsAndPrintsJson() throws Exception {
        CliRun r = CliRun.of("demo", "--json", "--memory", "128M");
        assertEquals(0, r.exit(), r.err());
        JsonNode out = Json.MAPPER.readTree(r.out());
        JsonNode m = out.get("migrations").get(0);
        assertEquals("completed", m.get("status").asText());
        assertTrue(m.get("memoryVerified").asBoolean());
        JsonNode drain = out.get("drain");
        assertEquals("completed", drain.get("status").asText(), drain.toString());
        assertEquals(3, drain.get("moved").size(), drain.toString());
        JsonNode f = out.get("failover");
        for (String key : new String[] {"vm", "from", "to", "detectMs", "restartMs"}) {
            assertTrue(f.has(key), "missing " + key + " in " + f);
        }
        assertNotEquals(f.get("from").asText(), f.get("to").asText());
        assertTrue(f.get("restartMs").asLong() >= f.get("detectMs").asLong(), f.toString());
        DemoFacts.assertFacts(out);
    }
}
