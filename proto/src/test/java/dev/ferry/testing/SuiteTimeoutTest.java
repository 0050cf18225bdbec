package dev.ferry.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

/**
 * The build gives every test method a default timeout, in a thread of its own (so a test stuck in
 * a call that ignores interrupts is abandoned, not waited for): pinned here, because a build that
 * lost the setting would hang CI on the first wedged test instead of failing it.
 */
@ExtendWith(SuiteTimeoutTest.Config.class)
class SuiteTimeoutTest {
    static final class Config implements ParameterResolver {
        @Override
        public boolean supportsParameter(ParameterContext p, ExtensionContext e) {
            return p.getParameter().getType() == ExtensionContext.class;
        }

        @Override
        public Object resolveParameter(ParameterContext p, ExtensionContext e) {
            return e;
        }
    }

    @Test
    void everyTestHasADefaultTimeoutInASeparateThread(ExtensionContext context, TestInfo info) {
        Optional<String> timeout = context.getConfigurationParameter("junit.jupiter.execution.timeout.default");
        assertTrue(timeout.isPresent(), "junit.jupiter.execution.timeout.default is not set by the build");
        assertTrue(timeout.get().matches("\\d+ ?(s|m|min|h)"), "not a JUnit duration: " + timeout.get());
        assertEquals(
                Optional.of("SEPARATE_THREAD"),
                context.getConfigurationParameter("junit.jupiter.execution.timeout.thread.mode.default"));
        assertTrue(!Thread.currentThread().getName().equals("main"), "runs in its own thread, not main");
    }
}
