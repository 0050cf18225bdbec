package dev.ferry.migration.precopy;

import dev.ferry.hypervisor.PageBitmap;

/**
 * Faults a test injects into the source side of a migration, to show that the checks meant to
 * catch them do fire (negative controls) and to drive the commit phase into each row of the
 * failure table of docs/ARCHITECTURE.md.
 *
 * <p>Never set in production: {@link #NONE} is every sender's default, and the only way to change
 * it is {@code Agent.injectSenderFaults}, which no command-line flag, setting, environment
 * variable or RPC reaches. Every method is called on the migration's own thread.
 */
public interface SenderFaults {
    /** No fault: what every production migration runs with. */
    SenderFaults NONE = new SenderFaults() {};

    /** What a fault may do to a migration's lanes once the destination said Ready. */
    interface Lanes {
        /** Ends every lane's stream at once, without an Abort: the destination loses its lanes. */
        void cut();
    }

    /** Pre-copy is over and the switchover is next; the guest still runs. */
    default void beforeSwitchover() throws InterruptedException {}

    /**
     * The final dirty log read as the tracking reported it (the guest is paused), before anything
     * uses it: clearing a bit makes the tracking have missed that write.
     */
    default void finalDirtyLog(PageBitmap logged) {}

    /**
     * The pages of the final round (the guest is paused), before they are sent: clearing a bit
     * drops that page from the migration. {@code writtenAfterTheLastRound} are those the guest wrote
     * after the last round had been sent, so the destination's copy of each is older than the
     * source's.
     */
    default void finalPages(PageBitmap pages, PageBitmap writtenAfterTheLastRound) {}

    /** The destination said Ready and the commit is next; {@code lanes} may be cut here. */
    default void beforeCommit(Lanes lanes) throws InterruptedException {}

    /** False: the Commit frame is not sent (the source believes it sent it). */
    default boolean deliverCommit() {
        return true;
    }

    /** False: the destination's Resumed is not heard (it arrives and is ignored). */
    default boolean hearResumed() {
        return true;
    }
}
