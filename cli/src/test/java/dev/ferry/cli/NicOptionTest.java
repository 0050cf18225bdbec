package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** `ferry vm create --nic` and `ferry agent --announce-*`: bad values are usage errors, one line, exit 2. */
class NicOptionTest {
    @Test
    void aBadNicIsAUsageErrorBeforeAnyClusterIsAsked() {
        CliRun multicast = CliRun.of(
                "vm",
                "create",
                "x",
                "--memory",
                "64M",
                "--nic",
                "bridge=br0,mac=01:00:5e:00:00:01",
                "--zk",
                "198.18.1.11:2181");
        assertEquals(2, multicast.exit(), multicast.err());
        assertTrue(multicast.err().contains("multicast"), multicast.err());
        CliRun noBridge =
                CliRun.of("vm", "create", "x", "--memory", "64M", "--nic", "model=e1000", "--zk", "198.18.1.11:2181");
        assertEquals(2, noBridge.exit(), noBridge.err());
        assertTrue(noBridge.err().contains("bridge=BR is required"), noBridge.err());
    }

    @Test
    void announceSettingsAreChecked() {
        CliRun agent = CliRun.of(
                "agent",
                "--host-id",
                "h1",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                "/nonexistent",
                "--announce-initial-ms",
                "900",
                "--announce-max-ms",
                "100");
        assertEquals(2, agent.exit(), agent.err());
        assertTrue(agent.err().contains("announce max 100 ms is below initial 900 ms"), agent.err());
    }
}
