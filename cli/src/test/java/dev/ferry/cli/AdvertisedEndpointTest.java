package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.rpc.Endpoint;
import org.junit.jupiter.api.Test;

/** The rule for what a cluster daemon registers in ZooKeeper (README, The CLI: --advertise). */
class AdvertisedEndpointTest {
    private static CliException refused(String listen, String advertise, boolean singleMachine) {
        return assertThrows(
                CliException.class, () -> AdvertisedEndpoint.choose("agent", listen, advertise, singleMachine));
    }

    @Test
    void aRoutableListenAddressIsAdvertisedAsBound() {
        assertNull(AdvertisedEndpoint.choose("agent", "198.18.1.5:7070", null, false));
        assertNull(AdvertisedEndpoint.choose("agent", "198.18.1.5:0", null, false));
    }

    @Test
    void aWildcardListenNeedsAnAdvertisedAddress() {
        CliException e = refused("0.0.0.0:7070", null, false);
        assertTrue(e.getMessage().contains("--advertise"), e.getMessage());
        assertEquals(2, e.exitCode());
        refused("[::]:7070", null, false);
        // even on one machine: a wildcard is never an address to dial
        refused("0.0.0.0:7070", null, true);
        assertEquals(
                new Endpoint.Tcp("198.18.1.5", 7070),
                AdvertisedEndpoint.choose("agent", "0.0.0.0:7070", "198.18.1.5:7070", false));
    }

    @Test
    void aWildcardIsNeverAdvertised() {
        refused("198.18.1.5:7070", "0.0.0.0:7070", false);
        refused("198.18.1.5:7070", "[::]:7070", true);
    }

    @Test
    void loopbackOnlyOnASingleMachine() {
        CliException e = refused("127.0.0.1:7070", null, false);
        assertTrue(e.getMessage().contains("--single-machine"), e.getMessage());
        refused("0.0.0.0:7070", "127.0.0.1:7070", false);
        refused("0.0.0.0:7070", "127.0.1.1:7070", false);
        refused("0.0.0.0:7070", "localhost:7070", false);
        refused("[::1]:7070", null, false);
        assertNull(AdvertisedEndpoint.choose("agent", "127.0.0.1:0", null, true));
        assertEquals(
                new Endpoint.Tcp("localhost", 7070),
                AdvertisedEndpoint.choose("agent", "0.0.0.0:7070", "localhost:7070", true));
    }

    @Test
    void anAdvertisedEndpointNeedsARealPort() {
        refused("0.0.0.0:7070", "198.18.1.5:0", false);
        refused("0.0.0.0:7070", "198.18.1.5", false);
        refused("nonsense", null, false);
    }

    @Test
    void aNameThatDoesNotResolveHerePasses() {
        assertEquals(
                new Endpoint.Tcp("agent-7.ferry.invalid", 7070),
                AdvertisedEndpoint.choose("agent", "0.0.0.0:7070", "agent-7.ferry.invalid:7070", false));
    }

    @Test
    void theCommandsRefuseWithAClearError() {
        CliRun agent = CliRun.of(
                "agent",
                "--host-id",
                "h1",
                "--listen",
                "0.0.0.0:0",
                "--data-dir",
                "/nonexistent",
                "--zk",
                "198.18.1.11:2181");
        assertEquals(2, agent.exit(), agent.err());
        assertTrue(agent.err().contains("--advertise"), agent.err());
        CliRun coordinator = CliRun.of("coordinator", "--zk", "198.18.1.11:2181", "--listen", "127.0.0.1:0");
        assertEquals(2, coordinator.exit(), coordinator.err());
        assertTrue(coordinator.err().contains("loopback"), coordinator.err());
        CliRun up = CliRun.of("cluster", "up", "--dir", "/nonexistent", "--zk", "198.18.1.11:2181");
        assertEquals(2, up.exit(), up.err());
        assertTrue(up.err().contains("--zk"), up.err());
    }
}
