package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * What the demo did, checked from its JSON and from the machine, not from the sentences it prints
 * (which it prints whatever happened).
 */
final class DemoFacts {
    private DemoFacts() {}

    static void assertFacts(JsonNode out) throws IOException {
        // The live migration: the guest carried on from where it was on host-2, and counts there.
        JsonNode g = out.get("guest");
        assertEquals("host-2", g.get("host").asText(), g.toString());
        assertEquals(2, g.get("epoch").asLong(), g.toString());
        assertTrue(g.get("heartbeatBefore").asLong() > 0, g.toString());
        assertTrue(
                g.get("heartbeatArrived").asLong() >= g.get("heartbeatBefore").asLong(),
                "the heartbeat continues, it does not restart: " + g);
        assertTrue(
                g.get("heartbeatLater").asLong() > g.get("heartbeatArrived").asLong(),
                "the guest's heartbeat moved on the destination: " + g);

        // The failover: the VM counts again on its new host.
        JsonNode f = out.get("failover");
        assertTrue(f.get("heartbeatLater").asLong() > f.get("heartbeatBefore").asLong(), f.toString());

        // Every VM runs on exactly one host, as the live agents themselves report, and the killed host runs none.
        JsonNode running = out.get("runningOn");
        assertEquals(3, running.size(), running.toString());
        for (String vm : List.of("demo-vm", "svc-a", "svc-b")) {
            JsonNode hosts = running.get(vm);
            assertEquals(1, hosts == null ? 0 : hosts.size(), vm + " runs on " + hosts);
            assertFalse(hosts.get(0).asText().equals(f.get("from").asText()), running.toString());
        }
        assertEquals(f.get("to").asText(), running.get("demo-vm").get(0).asText());

        // Nothing is left: no process mentions the demo's directory, and the directory is gone.
        Path dir = Path.of(out.get("dir").asText());
        assertFalse(Files.exists(dir), "the demo left " + dir);
        assertEquals(List.of(), processesMentioning(dir.toString()), "processes left by the demo");
    }

    static List<String> processesMentioning(String needle) {
        List<String> found = new ArrayList<>();
        ProcessHandle.allProcesses().forEach(p -> {
            try {
                String cmd = new String(
                        Files.readAllBytes(Path.of("/proc", Long.toString(p.pid()), "cmdline")),
                        StandardCharsets.UTF_8);
                if (cmd.contains(needle) && p.isAlive()) {
                    found.add(p.pid() + " " + cmd.replace('\0', ' '));
                }
            } catch (IOException | RuntimeException e) {
                // gone meanwhile
            }
        });
        return found;
    }
}
