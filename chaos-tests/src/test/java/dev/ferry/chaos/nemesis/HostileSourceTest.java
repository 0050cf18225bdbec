package dev.ferry.chaos.nemesis;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** What scenario 13 reads from the hostile source's output, and how it tells a refusal. */
class HostileSourceTest {
    private static HostileSource.Outcome ended(String status) {
        return new HostileSource.Outcome(
                "r1-h1", "garbage", "406", "ok", "406 bytes that are no frame", status, 12, "free", "why\twith a tab");
    }

    @Test
    void anOutcomeLineReadsBackAsItWasPrinted() {
        HostileSource.Outcome o = ended("ABORTED");
        HostileSource.Outcome back = HostileSource.Outcome.parse(o.line());
        // A tab in the destination's words must not cut the line's fields.
        assertEquals(
                new HostileSource.Outcome(
                        "r1-h1",
                        "garbage",
                        "406",
                        "ok",
                        "406 bytes that are no frame",
                        "ABORTED",
                        12,
                        "free",
                        "why with a tab"),
                back);
    }

    @Test
    void onlyAnErrorStatusAfterATakenPrepareIsARefusal() {
        assertTrue(ended("ABORTED").refused());
        assertTrue(ended("CANCELLED").refused());
        assertFalse(ended("READY").refused(), "an accepted migration");
        assertFalse(ended("COMPLETED").refused(), "a call the destination completed");
        assertFalse(ended("OPEN").refused(), "a call the destination never ended");
        HostileSource.Outcome noPrepare =
                new HostileSource.Outcome("r1-h1", "garbage", "1", "failed: no", "", "", -1, "", "");
        assertFalse(noPrepare.refused(), "nothing was sent: nothing was tested");
    }

    @Test
    void eachScriptNamesTheRefusalItMustGet() {
        assertEquals(
                "batch base page 18446744073709551360 is not a window start below",
                HostileSource.Script.PAGES_BEYOND_MEMORY.expected("18446744073709551360"));
        assertEquals(
                "zero run 0+2147483648 out of order or out of window",
                HostileSource.Script.HUGE_COUNT.expected("zero-run-2147483648"));
        assertEquals(
                "source sent 0 batches of 18446744073709551615 pages",
                HostileSource.Script.HUGE_COUNT.expected("round-end-18446744073709551615"));
        for (HostileSource.Script s : HostileSource.Script.values()) {
            assertEquals(s, HostileSource.Script.of(s.id));
        }
    }
}
