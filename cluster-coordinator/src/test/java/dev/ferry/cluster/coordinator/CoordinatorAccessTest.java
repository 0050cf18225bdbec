package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.client.CoordinatorRpc;
import dev.ferry.rpc.AccessPolicy;
import dev.ferry.rpc.RateLimit;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class CoordinatorAccessTest {
    @Test
    void everyRequestThatChangesTheClusterIsRateLimitedAndNothingElse() {
        RateLimit limit = new RateLimit(5, 10);
        AccessPolicy p = CoordinatorAccess.policy(limit);
        assertEquals(Optional.of(limit), p.rateLimit());
        for (String m : CoordinatorAccess.CHANGES) {
            assertTrue(p.limits(CoordinatorRpc.SERVICE.fullMethodName(m)), m);
        }
        for (String m : java.util.List.of("GetStatus", "ListHosts", "ListVms", "GetVm")) {
            assertFalse(p.limits(CoordinatorRpc.SERVICE.fullMethodName(m)), m);
        }
        // An agent asking whether ZooKeeper is down decides whether its guests keep running:
        // never throttled.
        assertFalse(p.limits(OutagePromises.SERVICE.fullMethodName("AttestOutage")));
    }

    @Test
    void theDefaultLetsAScriptCreateAHundredVmsAtOnce() {
        assertEquals(100, CoordinatorAccess.DEFAULT_CHANGE_LIMIT.burst());
        assertEquals(
                Optional.of(CoordinatorAccess.DEFAULT_CHANGE_LIMIT),
                CoordinatorAccess.policy().rateLimit());
    }
}
