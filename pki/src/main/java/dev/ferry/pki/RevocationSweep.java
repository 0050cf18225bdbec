package dev.ferry.pki;

import java.io.Closeable;
import java.time.Duration;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;

/**
 * A periodic look at connections already open against the {@link RevocationWatch revocation list}.
 * The handshake checks the list, but daemons keep their connections for hours, so whatever holds
 * open connections (gRPC servers and channels, ZooKeeper's x509 provider) also runs an action once
 * a period that ends those of revoked peers. This is that schedule, once: started, the action runs
 * every {@code period} (after a first period) until the sweep is closed.
 *
 * <ul>
 *   <li>Sweeps share a thread per thread name for the whole process: each only stats a file and
 *       walks a few maps, so a thread per server or channel would cost more than it does. The
 *       threads are daemons, so a sweep that nobody closed never keeps a JVM alive.
 *   <li>An action that throws is logged ({@code cannot check <what> against the revocation list})
 *       on its owner's logger and runs again at the next period: a scheduled task that throws is
 *       never run again, and a sweep that silently stopped would leave revoked peers connected.
 *   <li>Its owners start one while they have something open and close it when that is gone, so
 *       that an idle or discarded server costs nothing; a closed sweep cannot be started again
 *       (a new one is made), so a close racing a start cannot leave a schedule nobody owns.
 * </ul>
 */
public final class RevocationSweep implements Closeable {
    public enum State {
        NEW,
        RUNNING,
        CLOSED
    }

    /** One daemon thread per name, for every sweep of the process that names it. */
    private static final ConcurrentMap<String, ScheduledExecutorService> THREADS = new ConcurrentHashMap<>();

    private final String thread;
    private final Duration period;
    private final String what;
    private final Logger log;
    private final Runnable action;

    private State state = State.NEW;
    private ScheduledFuture<?> scheduled;

    /**
     * @param thread the name of the (shared) thread it runs on
     * @param period between the end of one run and the start of the next, and before the first
     * @param what what the action checks, for the log line of a failed run ("open calls")
     * @param log the owner's logger, so that a failure is logged where the owner's lines are
     */
    public RevocationSweep(String thread, Duration period, String what, Logger log, Runnable action) {
        this.thread = Objects.requireNonNull(thread, "thread");
        this.period = Objects.requireNonNull(period, "period");
        this.what = Objects.requireNonNull(what, "what");
        this.log = Objects.requireNonNull(log, "log");
        this.action = Objects.requireNonNull(action, "action");
        if (period.isNegative() || period.isZero()) {
            throw new IllegalArgumentException("a sweep's period must be positive, not " + period);
        }
    }

    /** Schedules the action; NEW to RUNNING only. */
    public synchronized RevocationSweep start() {
        if (state != State.NEW) {
            throw new IllegalStateException("cannot start a revocation sweep of " + what + " that is " + state);
        }
        long ms = period.toMillis();
        scheduled = THREADS.computeIfAbsent(thread, RevocationSweep::newThread)
                .scheduleWithFixedDelay(this::runQuietly, ms, ms, TimeUnit.MILLISECONDS);
        state = State.RUNNING;
        return this;
    }

    public synchronized State state() {
        return state;
    }

    /**
     * Stops the schedule (a run under way finishes; none starts after). Idempotent, and safe from
     * within the action itself, which is how an owner stops sweeping once nothing is open.
     */
    @Override
    public synchronized void close() {
        if (state == State.RUNNING) {
            scheduled.cancel(false);
        }
        state = State.CLOSED;
    }

    private void runQuietly() {
        try {
            action.run();
        } catch (RuntimeException e) {
            log.error("cannot check {} against the revocation list: {}", what, e.toString());
        }
    }

    private static ScheduledExecutorService newThread(String name) {
        return Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().daemon().name(name).factory());
    }
}
