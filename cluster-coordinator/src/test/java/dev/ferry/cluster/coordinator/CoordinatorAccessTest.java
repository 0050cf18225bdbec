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
    void viewersFollowConsolesOperatorsAlsoWriteAndAgentsHaveNone() {
        AccessPolicy p = CoordinatorAccess.policy();
        String console = CoordinatorRpc.SERVICE.fullMethodName("Console");
        dev.ferry.pki.Identity viewer = new dev.ferry.pki.Identity("c", dev.ferry.pki.Role.VIEWER, "ann");
        dev.ferry.pki.Identity operator = new dev.ferry.pki.Identity("c", dev.ferry.pki.Role.OPERATOR, "bob");
        dev.ferry.pki.Identity agent = new dev.ferry.pki.Identity("c", dev.ferry.pki.Role.AGENT, "host-1");
        assertTrue(p.decide(console, viewer) instanceof AccessPolicy.Decision.Allowed);
        assertTrue(p.decide(console, operator) instanceof AccessPolicy.Decision.Allowed);
        assertTrue(p.decide(console, agent) instanceof AccessPolicy.Decision.Denied);
        assertFalse(p.limits(console), "following a console changes nothing in the cluster");
        assertFalse(CoordinatorAccess.mayWriteConsole(Optional.of(viewer)));
        assertTrue(CoordinatorAccess.mayWriteConsole(Optional.of(operator)));
    }

    @Test
    void theDefaultLetsAScriptCreateAHundredVmsAtOnce() {
        assertEquals(100, CoordinatorAccess.DEFAULT_CHANGE_LIMIT.burst());
        assertEquals(
                Optional.of(CoordinatorAccess.DEFAULT_CHANGE_LIMIT),
                CoordinatorAccess.policy().rateLimit());
    }
}
