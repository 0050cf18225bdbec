package dev.ferry.hypervisor;

/**
 * Which guest pages were written since the last collection.
 *
 * <p>The order per pre-copy round is collect-and-reset first, then read the pages: a write that
 * lands after the collection marks its page again for the next round.
 */
public interface DirtyLog extends AutoCloseable {
    /** Starts recording writes. Pages written before this are not reported. */
    void start() throws HypervisorException;

    /**
     * Adds every page written since the previous collection (or {@link #start()}) to {@code into}
     * and resets the log. With {@code rearm} false the log is not reset for further tracking: the
     * cheaper form for the final pass, taken while the guest is paused.
     */
    void collect(PageBitmap into, boolean rearm) throws HypervisorException;

    /** Stops recording and releases the tracking resources. */
    void stop();

    @Override
    default void close() {
        stop();
    }
}
