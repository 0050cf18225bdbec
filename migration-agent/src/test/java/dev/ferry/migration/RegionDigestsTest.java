package dev.ferry.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.PageBitmap;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** Digests kept current by region must equal a fresh digest of all of RAM whenever marks were honest. */
class RegionDigestsTest {
    private static final int MIB = 1 << 20;
    private static final int PAGE = ArrayGuestMemory.PAGE;

    private static void writePage(ArrayGuestMemory m, long page, byte value) {
        byte[] b = new byte[PAGE];
        java.util.Arrays.fill(b, value);
        m.write(page * PAGE, MemorySegment.ofArray(b));
    }

    @Test
    void keptDigestsEqualAFreshDigestAfterMarkedChangesAndRereadOnlyTheMarkedRegions() {
        ArrayGuestMemory m = new ArrayGuestMemory(new byte[70 * MIB]); // 5 regions, the last one short
        new SplittableRandom(1).nextBytes(m.bytes());
        RegionDigests d = new RegionDigests(m.sizeBytes());
        assertEquals(5, d.regions());
        d.refreshInBackground(m);
        SplittableRandom r = new SplittableRandom(2);
        PageBitmap dirty = new PageBitmap(m.pageCount());
        for (int i = 0; i < 20; i++) {
            long page = r.nextLong(m.pageCount()) / 2; // the first half: regions 0-2
            writePage(m, page, (byte) i);
            dirty.set(page);
        }
        d.markStale(dirty, PAGE);
        int reread = d.refresh(m);
        assertTrue(reread <= 5, "the first pass may still have been reading: " + reread);
        assertEquals(RamDigest.of(m), d.combined());

        // After the final refresh: only what changes since is read again.
        RegionDigests again = new RegionDigests(m.sizeBytes());
        again.refresh(m);
        writePage(m, m.pageCount() - 1, (byte) 7);
        again.markStale((m.pageCount() - 1) * PAGE, PAGE);
        assertEquals(1, again.staleCount());
    }

    @Test
    void aChangeNobodyMarkedIsMissedByTheKeptDigestsAndFoundByTheAudit() {
        ArrayGuestMemory m = new ArrayGuestMemory(new byte[48 * MIB]);
        RegionDigests d = new RegionDigests(m.sizeBytes());
        d.refresh(m);
        long fresh = d.combined();
        writePage(m, (20L * MIB) / PAGE, (byte) 1); // region 1, not marked: a write the tracking missed
        assertEquals(fresh, d.combined(), "kept digests trust the marks");
        assertNotEquals(fresh, RamDigest.of(m));
        assertEquals(List.of(1), d.audit(m, List.of(0, 1, 2)));
        assertEquals(List.of(), d.audit(m, List.of(0, 2)), "a sample without it sees nothing");
    }

    /**
     * A writer changes pages and marks them after each write while background refreshes run;
     * once it stops, the final refresh must give the digest of memory as it is.
     */
    @Test
    void refreshesRacingMarkedWritesEndWithTheTrueDigest() throws Exception {
        ArrayGuestMemory m = new ArrayGuestMemory(new byte[64 * MIB]);
        RegionDigests d = new RegionDigests(m.sizeBytes());
        AtomicBoolean stop = new AtomicBoolean();
        Thread writer = Thread.ofPlatform().start(() -> {
            SplittableRandom r = new SplittableRandom(5);
            while (!stop.get()) {
                long page = r.nextLong(m.pageCount());
                writePage(m, page, (byte) r.nextInt());
                d.markStale(page * PAGE, PAGE);
            }
        });
        for (int i = 0; i < 20; i++) {
            d.refreshInBackground(m);
            Thread.sleep(5);
        }
        stop.set(true);
        writer.join();
        d.refresh(m);
        assertEquals(RamDigest.of(m), d.combined());
    }

    /**
     * Regression: background refreshes ran on the hashing threads and waited there for their own
     * region tasks, so as many concurrent migrations as there are hashers (two on these machines)
     * held every hasher and waited for ever (found by ReceiverFuzzTest, which hung).
     */
    @Test
    void moreBackgroundRefreshesThanHashersAtOnceAllFinish() {
        int n = Runtime.getRuntime().availableProcessors() + 2;
        List<ArrayGuestMemory> memories = new java.util.ArrayList<>();
        List<RegionDigests> digests = new java.util.ArrayList<>();
        for (int i = 0; i < n; i++) {
            ArrayGuestMemory m = new ArrayGuestMemory(new byte[48 * MIB]);
            new SplittableRandom(i).nextBytes(m.bytes());
            memories.add(m);
            digests.add(new RegionDigests(m.sizeBytes()));
        }
        org.junit.jupiter.api.Assertions.assertTimeoutPreemptively(java.time.Duration.ofSeconds(60), () -> {
            for (int i = 0; i < n; i++) {
                digests.get(i).refreshInBackground(memories.get(i));
            }
            for (int i = 0; i < n; i++) {
                digests.get(i).refresh(memories.get(i));
                assertEquals(RamDigest.of(memories.get(i)), digests.get(i).combined());
            }
        });
    }
}
