package dev.ferry.pki;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

/** The schedule every revocation sweep of open connections runs on. */
class RevocationSweepTest {
    /** Short, so that the tests wait for runs, not for time; nothing asserts how long a run took. */
    private static final Duration PERIOD = Duration.ofMillis(10);
    /** How long a test waits for runs that should come within a few periods. */
    private static final long PATIENCE_S = 10;

    private final ch.qos.logback.classic.Logger log =
            (ch.qos.logback.classic.Logger) LoggerFactory.getLogger(RevocationSweepTest.class);
    private final ListAppender<ILoggingEvent> lines = new ListAppender<>();

    @BeforeEach
    void captureLog() {
        lines.start();
        log.addAppender(lines);
    }

    @AfterEach
    void releaseLog() {
        log.detachAppender(lines);
        lines.stop();
    }

    private RevocationSweep sweep(Runnable action) {
        return new RevocationSweep("ferry-test-revocation-sweep", PERIOD, "test connections", log, action);
    }

    @Test
    void runsTheActionPeriodicallyOnANamedDaemonThread() throws InterruptedException {
        CountDownLatch runs = new CountDownLatch(3);
        AtomicReference<Thread> on = new AtomicReference<>();
        try (RevocationSweep s = sweep(() -> {
            on.set(Thread.currentThread());
            runs.countDown();
        })) {
            assertEquals(RevocationSweep.State.NEW, s.state(), "nothing runs before start");
            s.start();
            assertEquals(RevocationSweep.State.RUNNING, s.state());
            assertTrue(runs.await(PATIENCE_S, TimeUnit.SECONDS), "the action ran three times");
        }
        assertEquals("ferry-test-revocation-sweep", on.get().getName());
        assertTrue(on.get().isDaemon(), "a sweep nobody closed must not keep the JVM alive");
    }

    @Test
    void survivesAnActionThatThrowsAndLogsWhy() throws InterruptedException {
        AtomicInteger calls = new AtomicInteger();
        CountDownLatch afterFailures = new CountDownLatch(2);
        try (RevocationSweep s = sweep(() -> {
            if (calls.incrementAndGet() <= 2) {
                throw new IllegalStateException("list unreadable");
            }
            afterFailures.countDown();
        })) {
            s.start();
            assertTrue(afterFailures.await(PATIENCE_S, TimeUnit.SECONDS), "the action ran again after it threw");
        }
        List<String> errors;
        synchronized (lines) {
            errors = lines.list.stream()
                    .filter(e -> e.getLevel() == ch.qos.logback.classic.Level.ERROR)
                    .map(ILoggingEvent::getFormattedMessage)
                    .toList();
        }
        assertEquals(
                List.of(
                        "cannot check test connections against the revocation list:"
                                + " java.lang.IllegalStateException: list unreadable",
                        "cannot check test connections against the revocation list:"
                                + " java.lang.IllegalStateException: list unreadable"),
                errors,
                "each failure is logged on the owner's logger, once");
    }

    @Test
    void stopsOnClose() throws InterruptedException {
        AtomicInteger calls = new AtomicInteger();
        CountDownLatch ran = new CountDownLatch(1);
        RevocationSweep s = sweep(() -> {
            calls.incrementAndGet();
            ran.countDown();
        });
        s.start();
        assertTrue(ran.await(PATIENCE_S, TimeUnit.SECONDS));
        s.close();
        assertEquals(RevocationSweep.State.CLOSED, s.state());
        // A run under way when close was called may still finish; none starts after it.
        Thread.sleep(PERIOD.multipliedBy(20));
        int settled = calls.get();
        Thread.sleep(PERIOD.multipliedBy(20));
        assertEquals(settled, calls.get(), "no run after close");
    }

    @Test
    void canBeClosedFromWithinItsOwnAction() throws InterruptedException {
        // How its owners stop sweeping once nothing is open.
        AtomicInteger calls = new AtomicInteger();
        AtomicReference<RevocationSweep> self = new AtomicReference<>();
        RevocationSweep s = sweep(() -> {
            if (calls.incrementAndGet() == 3) {
                self.get().close();
            }
        });
        self.set(s);
        s.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(PATIENCE_S);
        while (s.state() != RevocationSweep.State.CLOSED) {
            assertTrue(System.nanoTime() < deadline, "the action never closed its sweep");
            Thread.sleep(PERIOD.toMillis());
        }
        Thread.sleep(PERIOD.multipliedBy(20));
        assertEquals(3, calls.get(), "no run after the action closed it");
    }

    @Test
    void closingTwiceOrBeforeStartIsFine() {
        RevocationSweep never = sweep(() -> {});
        never.close();
        never.close();
        assertEquals(RevocationSweep.State.CLOSED, never.state());

        RevocationSweep s = sweep(() -> {}).start();
        s.close();
        s.close();
        assertEquals(RevocationSweep.State.CLOSED, s.state());
    }

    @Test
    void startAfterCloseOrTwiceIsRefused() {
        RevocationSweep s = sweep(() -> {});
        s.close();
        IllegalStateException e = assertThrows(IllegalStateException.class, s::start);
        assertTrue(e.getMessage().contains("CLOSED"), e.getMessage());
        assertEquals(RevocationSweep.State.CLOSED, s.state());

        try (RevocationSweep running = sweep(() -> {}).start()) {
            assertThrows(IllegalStateException.class, running::start, "one schedule per sweep");
            assertEquals(RevocationSweep.State.RUNNING, running.state());
        }
    }

    @Test
    void refusesAPeriodThatIsNotPositive() {
        assertThrows(
                IllegalArgumentException.class,
                () -> new RevocationSweep("t", Duration.ZERO, "test connections", log, () -> {}));
    }
}
