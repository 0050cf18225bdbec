package dev.ferry.pki;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.time.Duration;
import java.time.Instant;
import org.junit.jupiter.api.Test;

class IdentityTest {
    @Test
    void roundTripsThroughItsUri() {
        Identity id = new Identity("prod", Role.COORDINATOR, "c-2");
        assertEquals(id, Identity.parse(id.uri().toString()));
    }

    @Test
    void refusesWhatIsNotAnIdentity() {
        for (String bad : new String[] {
            "https://prod/agent/h",
            "ferry://prod/agent",
            "ferry://prod/agent/h/extra",
            "ferry://prod/king/h",
            "ferry://prod/agent/h?x=1",
            "ferry://prod/agent/../h",
            "ferry:///agent/h"
        }) {
            assertThrows(IllegalArgumentException.class, () -> Identity.parse(bad), bad);
        }
    }

    @Test
    void namesAreSafeInPathsAndZnodes() {
        assertThrows(IllegalArgumentException.class, () -> new Identity("prod", Role.AGENT, "a/b"));
        assertThrows(IllegalArgumentException.class, () -> new Identity("prod", Role.AGENT, ".."));
        assertThrows(IllegalArgumentException.class, () -> new Identity("prod", Role.AGENT, ""));
    }

    @Test
    void validityPolicy() {
        Instant nb = Instant.parse("2026-01-01T00:00:00Z");
        Instant na = Instant.parse("2027-01-01T00:00:00Z");
        Duration month = Duration.ofDays(30);
        assertEquals(Validity.NOT_YET_VALID, Validity.of(nb, na, nb.minusSeconds(1), month));
        assertEquals(Validity.VALID, Validity.of(nb, na, nb, month));
        assertEquals(Validity.EXPIRING_SOON, Validity.of(nb, na, na.minus(Duration.ofDays(29)), month));
        assertEquals(Validity.EXPIRED, Validity.of(nb, na, na, month));
    }
}
