package dev.ferry.migration;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.PageBitmap;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** Digests kept current by leaf must equal a fresh digest of all of RAM whenever marks were honest. */
class RegionDigestsTest {
    private static final int MIB = 1 << 20;
    private static final int PAGE = ArrayGuestMemory.PAGE;

    private static void writePage(ArrayGuestMemory m, long page, byte value) {
        byte[] b = new byte[PAGE];
        java.util.Arrays.fill(b, value);
        m.write(page * PAGE, MemorySegment.ofArray(b));
    }

    @Test
    void aPeerThatDigestsByAnotherSchemeIsNamedBeforeAnyPageMoves() {
        assertTrue(RegionDigests.schemeMismatch("the destination", RegionDigests.SCHEME)
                .isEmpty());
        // 0: an agent from before the scheme was carried in the handshake (16 MiB regions).
        String older = RegionDigests.schemeMismatch("the destination", 0).orElseThrow();
        assertTrue(older.startsWith("the destination digests RAM by scheme 0 (an earlier Ferry"), older);
        assertTrue(older.contains("this agent by scheme " + RegionDigests.SCHEME), older);
        assertTrue(older.contains("migrate without --verify, or upgrade one"), older);
        String later = RegionDigests.schemeMismatch("the source", -1).orElseThrow();
        assertTrue(later.contains("scheme 4294967295 (unknown to this agent"), later);
    }

    @Test
    void keptDigestsEqualAFreshDigestAfterMarkedChangesAndRereadOnlyTheMarkedLeaves() {
        ArrayGuestMemory m = new ArrayGuestMemory(new byte[70 * MIB + 3 * PAGE]); // the last leaf and region short
        new SplittableRandom(1).nextBytes(m.bytes());
        RegionDigests d = new RegionDigests(m.sizeBytes());
        assertEquals(16 << 10, d.leafBytes());
        assertEquals(70 * 64 + 1, d.leaves());
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
        d.refresh(m);
        assertEquals(RamDigest.of(m), d.combined());

        // After the final refresh: only the leaves written since are read again.
        RegionDigests again = new RegionDigests(m.sizeBytes());
        again.refresh(m);
        PageBitmap two = new PageBitmap(m.pageCount());
        two.set(m.pageCount() - 1);
        two.set(4); // leaf 1, pages 4-7
        two.set(5);
        writePage(m, m.pageCount() - 1, (byte) 7);
        writePage(m, 4, (byte) 7);
        writePage(m, 5, (byte) 8);
        again.markStale(two, PAGE);
        assertEquals(2, again.staleCount());
        assertEquals(2, again.refresh(m));
        assertEquals(RamDigest.of(m), again.combined());
    }

    /** The tree's shape depends on the RAM size alone, so both hosts build the same one. */
    @Test
    void leavesStaySixteenKibUpToEightGibThenGrowSoTheKeptDigestsStayUnderFourMib() {
        long gib = 1L << 30;
        assertEquals(16 << 10, RegionDigests.leafBytesFor(512L << 20));
        assertEquals(16 << 10, RegionDigests.leafBytesFor(4 * gib));
        assertEquals(16 << 10, RegionDigests.leafBytesFor(8 * gib));
        assertEquals(32 << 10, RegionDigests.leafBytesFor(8 * gib + 1));
        assertEquals(1 << 20, RegionDigests.leafBytesFor(512 * gib));
        // The figure docs/ARCHITECTURE.md states for a 4 GiB guest: 262,144 leaves, about 2 MiB.
        RegionDigests four = new RegionDigests(4 * gib);
        assertEquals(262_144, four.leaves());
        assertEquals(256, four.regions());
        assertEquals(8L * 262_144 + 8 * 256 + 8 * 4096, four.keptBytes());
        assertTrue(new RegionDigests(1024 * gib).keptBytes() <= (4 << 20) + 128 * 1024);
    }

    @Test
    void aChangeNobodyMarkedIsMissedByTheKeptDigestsAndFoundByAnAuditWhoseSampleHoldsIt() {
        ArrayGuestMemory m = new ArrayGuestMemory(new byte[48 * MIB]);
        RegionDigests d = new RegionDigests(m.sizeBytes());
        d.refresh(m);
        long fresh = d.combined();
        int[] sample = d.sample(42, 64);
        long page = (long) sample[17] * d.leafBytes() / PAGE + 1; // inside a sampled leaf
        writePage(m, page, (byte) 1); // not marked: a write the tracking missed
        assertEquals(fresh, d.combined(), "kept digests trust the marks");
        assertNotEquals(fresh, RamDigest.of(m));
        RegionDigests.Audit found = d.audit(m, 42, 64);
        assertEquals(64, found.sampled());
        assertEquals(List.of((long) sample[17] * d.leafBytes()), found.mismatchedOffsets());
        // A sample that does not hold the leaf sees nothing: the audit proves only what it reads.
        long seed = 43;
        while (java.util.Arrays.stream(d.sample(seed, 64)).anyMatch(l -> l == sample[17])) {
            seed++;
        }
        assertTrue(d.audit(m, seed, 64).clean());
        // Marked and refreshed, the change is in the kept digests and the audit agrees.
        d.markStale(page * PAGE, PAGE);
        assertEquals(1, d.refresh(m));
        assertTrue(d.audit(m, 42, 64).clean());
        assertEquals(RamDigest.of(m), d.combined());
    }

    @Test
    void anAuditSampleIsOneLeafFromEachEqualStretchAndTheSameForTheSameSeed() {
        RegionDigests d = new RegionDigests(64L * MIB); // 4096 leaves
        int[] s = d.sample(7, 128);
        assertEquals(128, s.length);
        for (int k = 0; k < s.length; k++) {
            assertTrue(s[k] >= k * 32 && s[k] < (k + 1) * 32, "leaf " + s[k] + " outside stretch " + k);
        }
        assertTrue(java.util.Arrays.equals(s, d.sample(7, 128)));
        assertFalse(java.util.Arrays.equals(s, d.sample(8, 128)));
        assertEquals(3, new RegionDigests(40 << 10).sample(1, 128).length, "fewer leaves than asked: all");
    }

    /** A leaf marked again while the audit's sample is read is not trusted: the audit skips it. */
    @Test
    void anAuditSkipsLeavesStillMarked() {
        ArrayGuestMemory m = new ArrayGuestMemory(new byte[4 * MIB]);
        RegionDigests d = new RegionDigests(m.sizeBytes());
        d.refresh(m);
        int[] sample = d.sample(1, 8);
        writePage(m, (long) sample[0] * d.leafBytes() / PAGE, (byte) 3);
        d.markStale((long) sample[0] * d.leafBytes(), PAGE);
        RegionDigests.Audit a = d.audit(m, 1, 8);
        assertEquals(7, a.sampled());
        assertTrue(a.clean());
    }

    /**
     * Regression: a background refresh asked for while one ran was dropped, so on a destination
     * the second lane's marks of the last round before the pause (a rewritten 64 MiB working set)
     * waited for the pause (`./ferry bench verify`: 4,000-4,500 leaves re-read there, up to 390 ms).
     */
    @Test
    void aBackgroundRefreshAskedForWhileOneRunsIsNotDropped() {
        ArrayGuestMemory m = new ArrayGuestMemory(new byte[64 * MIB]);
        new SplittableRandom(9).nextBytes(m.bytes());
        RegionDigests d = new RegionDigests(m.sizeBytes());
        d.refreshInBackground(m); // all 4096 leaves: still reading when the next asks
        writePage(m, 5, (byte) 1);
        d.markStale(5L * PAGE, PAGE);
        d.refreshInBackground(m);
        d.awaitBackground();
        assertEquals(0, d.staleCount());
        assertEquals(RamDigest.of(m), d.combined());
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
