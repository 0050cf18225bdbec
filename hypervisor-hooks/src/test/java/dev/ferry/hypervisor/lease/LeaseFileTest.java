package dev.ferry.hypervisor.lease;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The lease file is libferryhook's ABI: these tests pin its layout and its life cycle. */
class LeaseFileTest {
    @TempDir
    Path dir;

    private static ByteBuffer words(Path f) throws Exception {
        return ByteBuffer.wrap(Files.readAllBytes(f)).order(ByteOrder.LITTLE_ENDIAN);
    }

    @Test
    void theLayoutIsWhatTheHookReads() throws Exception {
        Path f = dir.resolve("lease");
        long deadline = System.nanoTime() + 5_000_000_000L;
        try (LeaseFile lease = LeaseFile.create(f, deadline)) {
            ByteBuffer w = words(f);
            assertEquals(LeaseFile.SIZE, w.capacity(), "one page: the hook maps a page");
            assertEquals(0x31534c5952524546L, w.getLong(0), "magic FERRYLS1");
            assertEquals(
                    "FERRYLS1", new String(Files.readAllBytes(f), 0, 8, java.nio.charset.StandardCharsets.US_ASCII));
            assertEquals(deadline, w.getLong(8));
            long revision = w.getLong(16);
            lease.grantUntil(deadline + 1);
            assertEquals(deadline + 1, words(f).getLong(8));
            assertEquals(revision + 1, words(f).getLong(16), "every write bumps the revision");
        }
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(f)));
    }

    @Test
    void revokedOrPastLeasesHaveLapsedAndAReopenedLeaseKeepsItsDeadline() throws Exception {
        Path f = dir.resolve("lease");
        long deadline = System.nanoTime() + 60_000_000_000L;
        try (LeaseFile lease = LeaseFile.create(f, deadline)) {
            assertFalse(lease.lapsed());
            lease.grantUntil(System.nanoTime() - 1);
            assertTrue(lease.lapsed());
            lease.grantUntil(deadline);
            lease.revoke();
            assertEquals(0, lease.deadline());
            assertTrue(lease.lapsed(), "deadline 0 means none granted: stop at once");
            lease.grantUntil(deadline);
        }
        // An agent restarted later opens the file the running guest maps: same deadline, in place.
        try (LeaseFile again = LeaseFile.open(f)) {
            assertEquals(deadline, again.deadline());
        }
        assertThrows(java.nio.file.NoSuchFileException.class, () -> LeaseFile.open(dir.resolve("none")));
    }

    @Test
    void aClosedLeaseRefusesUseButKeepsWhatItGranted() throws Exception {
        Path f = dir.resolve("lease");
        long deadline = System.nanoTime() + 60_000_000_000L;
        LeaseFile lease = LeaseFile.create(f, deadline);
        lease.close();
        assertThrows(IllegalStateException.class, () -> lease.grantUntil(1));
        assertEquals(deadline, words(f).getLong(8), "closing unmaps; the guest keeps its deadline");
    }
}
