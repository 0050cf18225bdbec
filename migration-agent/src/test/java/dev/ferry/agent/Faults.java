package dev.ferry.agent;

import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.migration.precopy.SenderFaults;
import java.util.concurrent.atomic.AtomicLong;

/** The sender faults the tests inject (see {@link SenderFaults}), each named after what it does. */
final class Faults {
    private Faults() {}

    /**
     * Drops the last page of the final round (the working set lies high in both test guests, so it
     * is a page the guest wrote and will come back to); {@code dropped} says which, -1 if the final
     * round was empty.
     */
    static SenderFaults dropLastPageOfTheFinalRound(AtomicLong dropped) {
        return dropLastPageOfTheFinalRoundBelow(Long.MAX_VALUE, dropped);
    }

    /** The same among the pages below {@code limit} (a guest's working set). */
    static SenderFaults dropLastPageOfTheFinalRoundBelow(long limit, AtomicLong dropped) {
        return new SenderFaults() {
            @Override
            public void finalPages(PageBitmap pages) {
                long page = -1;
                for (long p = pages.nextSetBit(0); p >= 0 && p < limit; p = pages.nextSetBit(p + 1)) {
                    page = p;
                }
                if (page >= 0) {
                    pages.clear(page);
                }
                dropped.set(page);
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
