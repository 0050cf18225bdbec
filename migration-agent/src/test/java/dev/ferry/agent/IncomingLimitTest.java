package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.rpc.Transport;
import io.grpc.Status;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * Issue 10's prepare flood: a caller that may prepare (a coordinator, or anyone holding its key)
 * asks one host to receive migration after migration. Each prepare starts a hypervisor and a RAM
 * file, so without a limit the host runs out of memory. With {@code --max-incoming} the prepares
 * beyond it are refused with RESOURCE_EXHAUSTED, start nothing, and the places come back as the
 * prepared migrations end.
 */
class IncomingLimitTest {
    private AgentPair pair;

    @AfterEach
    void tearDown() throws Exception {
        if (pair != null) {
            pair.close();
        }
    }

    private static PrepareIncomingRequest prepare(String id, String vm) {
        return PrepareIncomingRequest.newBuilder()
                .setMigrationId(id)
                .setSpec(AgentPair.busyGuest(vm, 16L << 20, 0))
                .setSourceHost("host-a")
                .setMode(TransferMode.TRANSFER_MODE_PRECOPY)
                .setEpoch(1)
                .build();
    }

    @Test
    void aPrepareFloodIsRefusedBeyondMaxIncomingAndThePlacesComeBack() throws Exception {
        // Prepared migrations whose source never connects are let go of after the handshake
        // deadline: 2 s here, so the test sees places come back without a source.
        pair = new AgentPair(
                Transport.plaintext(),
                dir -> new SimDriver(),
                c -> c.withMaxIncoming(2).withTimeouts(PreCopySender.Timeouts.defaults(), Duration.ofSeconds(2)));
        pair.clientB.prepareIncoming(prepare("m1", "v1"));
        pair.clientB.prepareIncoming(prepare("m2", "v2"));
        long dirs = pair.runDirs(pair.b);

        AgentCallException e =
                assertThrows(AgentCallException.class, () -> pair.clientB.prepareIncoming(prepare("m3", "v3")));
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.code());
        assertTrue(
                e.getMessage().contains("host-b already receives 2 migration(s), its limit (--max-incoming 2)"),
                e.getMessage());
        assertEquals(dirs, pair.runDirs(pair.b), "the refused prepare started nothing");
        assertEquals(2, pair.b.incomingCount());

        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (pair.b.incomingCount() > 0 && System.nanoTime() < deadline) {
            Thread.sleep(50);
        }
        assertEquals(0, pair.b.incomingCount(), "the unconnected prepares were let go of");
        assertEquals(0, pair.runDirs(pair.b));

        pair.clientB.prepareIncoming(prepare("m3", "v3"));
        assertThrows(AgentCallException.class, () -> pair.clientB.prepareIncoming(prepare("m4", "v3")));
        assertEquals(1, pair.b.incomingCount(), "a prepare refused for another reason gives its place back");
    }
}
