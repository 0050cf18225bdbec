package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.coordinator.HostView;
import dev.ferry.testkit.TestCluster;
import java.time.Duration;
import org.junit.jupiter.api.Test;

/** What a host can do travels from its agent's probe, through its registration, to the operator's view. */
class HostCapabilityTest {
    @Test
    void aHostsPrecopyCapabilityAndItsReasonReachTheCoordinatorsView() throws Exception {
        try (TestCluster cluster = TestCluster.start()) {
            cluster.coordinator(Duration.ofMillis(500));
            cluster.agent("h1", Duration.ofSeconds(6), false);
            try (CoordinatorClient client = cluster.client()) {
                HostView h = client.hosts().stream()
                        .filter(v -> v.getId().equals("h1"))
                        .findFirst()
                        .orElseThrow();
                assertTrue(h.getPrecopy(), h.toString());
                assertTrue(h.getDirtyTracking().equals("available: sim guest tracks its own writes"), h.toString());
            }
        }
    }
}
