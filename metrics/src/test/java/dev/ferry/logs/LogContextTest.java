package dev.ferry.logs;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.slf4j.MDC;

class LogContextTest {
    @Test
    void fieldsHoldForTheScopeAndTheThreadsItStartsAndAreRestoredAfter() throws Exception {
        AtomicReference<String> seen = new AtomicReference<>();
        try (LogContext.Scope outer = LogContext.with(LogContext.VM, "web")) {
            try (LogContext.Scope inner = LogContext.with(LogContext.MIGRATION, "m-1", LogContext.TARGET, "")) {
                Thread t = Thread.ofPlatform()
                        .start(LogContext.inherit(() -> seen.set(MDC.get("vm") + "/" + MDC.get("migration"))));
                t.join();
                assertNull(MDC.get("target"), "an empty value is left out");
            }
            assertEquals("web", MDC.get("vm"));
            assertNull(MDC.get("migration"));
        }
        assertNull(MDC.get("vm"));
        assertEquals("web/m-1", seen.get());
    }
}
