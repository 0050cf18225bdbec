package dev.ferry.agent;

import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.migration.precopy.SenderFaults;
import java.util.concurrent.atomic.AtomicLong;

/** The sender faults the tests inject (see {@link SenderFaults}), each named after what it does. */
final class Faults {
    private Faults() {}

    /**
     * Drops from the final round the last page (below {@code limit}: a guest's working set) that the
     * guest wrote after the last pre-copy round had been sent, so the destination's copy of it is
     * certainly older; the guest first runs on for a tenth of a second after pre-copy, so that it has
     * written some. {@code dropped} says which page, -1 if none.
     */
    static SenderFaults dropAPageWrittenAfterTheLastRound(long limit, AtomicLong dropped) {
        return new SenderFaults() {
            @Override
            public void beforeSwitchover() throws InterruptedException {
                Thread.sleep(100); // the fault's shape (a late switchover), not a wait for anything
            }

            @Override
            public void finalPages(PageBitmap pages, PageBitmap late) {
                long page = -1;
                for (long p = late.nextSetBit(0); p >= 0 && p < limit; p = late.nextSetBit(p + 1)) {
                    page = p;
                }
                if (page >= 0) {
                    pages.clear(page);
                }
                dropped.set(page);
            }
        };
    }

    static SenderFaults dropAPageWrittenAfterTheLastRound(AtomicLong dropped) {
        return dropAPageWrittenAfterTheLastRound(Long.MAX_VALUE, dropped);
    }

    /**
     * The dirty tracking misses every write the guest made after the last round (its final read
     * comes back empty): those pages are neither sent nor marked for the source's digests, as a
     * broken tracker would leave them.
     */
    static SenderFaults hideTheFinalDirtyLogsWrites(AtomicLong hidden) {
        return new SenderFaults() {
            @Override
            public void beforeSwitchover() throws InterruptedException {
                Thread.sleep(100); // the fault's shape (a late switchover), not a wait for anything
            }

            @Override
            public void finalDirtyLog(PageBitmap logged) {
                long n = logged.cardinality();
                for (long p = logged.nextSetBit(0); p >= 0; p = logged.nextSetBit(p + 1)) {
                    logged.clear(p);
                }
                hidden.set(n);
            }
        };
    }

    /** The source believes it sent its Commit; the destination never gets it. */
    static SenderFaults loseTheCommitFrame() {
        return new SenderFaults() {
            @Override
            public boolean deliverCommit() {
                return false;
            }
        };
    }

    /** The destination resumes and says so; the source never hears it. */
    static SenderFaults loseTheResumed() {
        return new SenderFaults() {
            @Override
            public boolean hearResumed() {
                return false;
            }
        };
    }

    /** Runs {@code atReady} once the destination said Ready, before the commit. */
    static SenderFaults atReady(AtReady atReady) {
        return new SenderFaults() {
            @Override
            public void beforeCommit(Lanes lanes) throws InterruptedException {
                atReady.run(lanes);
            }
        };
    }

    @FunctionalInterface
    interface AtReady {
        void run(SenderFaults.Lanes lanes) throws InterruptedException;
    }
}
