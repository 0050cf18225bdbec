package dev.ferry.migration.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class CompressionGovernorTest {
    private static final int MIB = 1 << 20;

    /** Runs batches of one MiB: each compresses to {@code ratio} in {@code compressNanos}, sends at {@code sendNanosPerByte}. */
    private static int attemptsIn(
            CompressionGovernor g, int batches, double ratio, long compressNanos, double sendNanosPerByte) {
        int attempts = 0;
        for (int i = 0; i < batches; i++) {
            int wire = MIB;
            if (g.shouldTry()) {
                attempts++;
                int n = (int) (MIB * ratio);
                g.recordCompression(MIB, n, compressNanos);
                if (g.useCompressed(MIB, n)) {
                    wire = n;
                }
            }
            g.recordSend(wire, (long) (wire * sendNanosPerByte));
        }
        return attempts;
    }

    @Test
    void compressibleMemoryOnASlowLinkIsAlwaysCompressed() {
        // 1 GbE: 8 ns per byte on the wire; LZ4 at 1 ns per byte saving 70% pays easily.
        assertEquals(100, attemptsIn(new CompressionGovernor(), 100, 0.3, MIB, 8.0));
    }

    @Test
    void incompressibleMemoryBacksOffExponentially() {
        int attempts = attemptsIn(new CompressionGovernor(), 1000, 1.0, MIB, 8.0);
        assertTrue(attempts <= 22, "attempts: " + attempts);
    }

    @Test
    void onAFastLinkCompressionThatCostsMoreThanItSavesIsSkipped() {
        // Loopback: 0.3 ns per wire byte; LZ4 at 2 ns per byte saving 60% costs more than it saves.
        CompressionGovernor g = new CompressionGovernor();
        int attempts = attemptsIn(g, 1000, 0.4, 2L * MIB, 0.3);
        assertTrue(attempts <= 22, "attempts: " + attempts);
        assertFalse(g.paysInTime());
    }

    @Test
    void highlyCompressibleMemoryPaysEvenOnAFastLink() {
        // 10:1 at 0.25 ns per byte beats sending at 0.3 ns per byte.
        assertEquals(500, attemptsIn(new CompressionGovernor(), 500, 0.1, MIB / 4, 0.3));
    }

    @Test
    void onePayingBatchResetsTheBackoff() {
        CompressionGovernor g = new CompressionGovernor();
        attemptsIn(g, 200, 1.0, MIB, 8.0);
        // Drain the current skip: at most the 64-batch back-off, so a governor that never tries again fails here.
        int skipped = 0;
        while (!g.shouldTry()) {
            skipped++;
            assertTrue(skipped <= 64, "the governor never tries compression again");
        }
        for (int i = 0; i < 8; i++) {
            g.recordCompression(MIB, MIB / 10, MIB / 10);
        }
        assertTrue(g.shouldTry());
    }

    @Test
    void paysOnlyWhenAnEighthIsSaved() {
        assertTrue(CompressionGovernor.pays(800, 700));
        assertFalse(CompressionGovernor.pays(800, 701));
    }
}
