package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.Test;

class DemoCommandTest {
  @Test
  void demoMovesABusyVmAndPrintsJson() throws Exception {
    CliRun r = CliRun.of("demo", "--json", "--memory", "256M");
    assertEquals(0, r.exit(), r.err());
    JsonNode out = Json.MAPPER.readTree(r.out());
    JsonNode m = out.get("migrations").get(0);
    assertEquals("completed", m.get("status").asText());
    assertTrue(m.get("memoryVerified").asBoolean());
    assertTrue(r.err().contains("nothing is left running"), r.err());
  }
}
