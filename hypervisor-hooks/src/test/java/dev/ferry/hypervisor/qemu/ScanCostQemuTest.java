package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.hypervisor.qemu.dirty.PagemapScanner;
import dev.ferry.testing.TestDirs;
import dev.ferry.testing.Timing;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.function.LongSupplier;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a scan costs on a real QEMU, idle and busy: logged for the record, with a loose bound so a
 * regression by an order of magnitude fails. The 1 GiB guest runs with -Dferry.qemu.bench=true.
 */
class ScanCostQemuTest {
    private static final Logger log = LoggerFactory.getLogger(ScanCostQemuTest.class);
    private Path dir;

    @BeforeEach
    void setUp() throws Exception {
        QemuTestSupport.requireNative();
        QemuTestSupport.requireDirtyTracking();
        dir = TestDirs.ramDir("cost");
    }

    @AfterEach
    void tearDown() throws Exception {
        TestDirs.deleteTree(dir);
    }

    @Test
    void scanOf128MiBGuest() throws Exception {
        measure(128);
    }

    @Test
    void scanOf1GiBGuest() throws Exception {
        assumeTrue(Boolean.getBoolean("ferry.qemu.bench"), "1 GiB guest only with -Dferry.qemu.bench=true");
        measure(1024);
    }

    @Test
    void startUpToQmpReady() throws Exception {
        assumeTrue(Boolean.getBoolean("ferry.qemu.bench"), "only with -Dferry.qemu.bench=true");
        for (int mib : new int[] {128, 1024}) {
            for (boolean hook : new boolean[] {false, true}) {
                double[] ms = new double[5];
                for (int i = 0; i < ms.length; i++) {
                    QemuCommand.Builder b = QemuTestSupport.testGuest("start" + mib + hook + i, dir, mib, "rate=0");
                    if (hook) {
                        b.hookLibrary(QemuTestSupport.hookLibrary());
                    }
                    try (QemuProcess q = QemuTestSupport.start(b.build())) {
                        ms[i] = q.startupTime().toNanos() / 1e6;
                    }
                }
                Arrays.sort(ms);
                log.info(String.format(
                        "%d MiB guest%s: launch to QMP ready min %.0f / median %.0f / max %.0f ms",
                        mib, hook ? " with hook" : "", ms[0], ms[ms.length / 2], ms[ms.length - 1]));
            }
        }
    }

    private void measure(int mib) throws Exception {
        // Idle: the test guest writes nothing but its heartbeat line's counters.
        double idleRearm;
        try (Guest g = new Guest("idle" + mib, mib, "rate=0 hb=1000")) {
            Sample rearm = g.sample(30, 20, true);
            Sample report = g.sample(30, 20, false);
            log.info("{} MiB idle:  re-arming scan {}; report-only scan {}", mib, rearm, report);
            idleRearm = rearm.median();
        }
        // Busy: as fast as the emulated vCPU writes pages, over all of RAM and then over 8 MiB only
        // (the cost follows how many 2 MiB page tables hold written pages, not only the page count).
        for (String ws : new String[] {"", " ws=8M"}) {
            try (Guest g = new Guest("busy" + mib + ws.strip().replace("=", ""), mib, "rate=50000 hb=1000" + ws)) {
                Thread.sleep(300);
                Sample rearm = g.sample(20, 100, true);
                g.qemu.qmp().execute("stop", Duration.ofSeconds(5));
                Thread.sleep(100);
                Sample report = g.sample(1, 0, false);
                log.info(
                        "{} MiB busy{}: re-arming scan every 100 ms {}; report-only final scan after stop {}",
                        mib,
                        ws.isEmpty() ? " (all RAM)" : ws,
                        rearm,
                        report);
            }
        }
        assertTrue(
                idleRearm < Timing.scaled(Duration.ofMillis(50)).toMillis(),
                "idle re-arming scan of " + mib + " MiB took " + idleRearm + " ms (median)");
    }

    private final class Guest implements AutoCloseable {
        final QemuProcess qemu;
        final PagemapScanner scanner;
        final PageBitmap bitmap;

        Guest(String name, int mib, String append) throws Exception {
            QemuCommand c = QemuTestSupport.testGuest(name, dir, mib, append)
                    .hookLibrary(QemuTestSupport.hookLibrary())
                    .build();
            qemu = QemuTestSupport.start(c);
            HookStatus s = qemu.awaitHookStatus(Duration.ofSeconds(5));
            scanner = PagemapScanner.open(qemu.pid(), s.start(), s.length());
            bitmap = new PageBitmap(scanner.pageCount());
            Timing.await("guest started", Duration.ofSeconds(10), () -> heartbeatSeen(c));
            scanner.collect(bitmap, true);
        }

        Sample sample(int n, long intervalMillis, boolean rearm) throws Exception {
            double[] ms = new double[n];
            double[] cpu = new double[n];
            long[] pages = new long[n];
            java.lang.management.ThreadMXBean threads = java.lang.management.ManagementFactory.getThreadMXBean();
            for (int i = 0; i < n; i++) {
                Thread.sleep(intervalMillis);
                bitmap.clear();
                long c0 = threads.getCurrentThreadCpuTime();
                PagemapScanner.ScanStats st = scanner.collect(bitmap, rearm);
                cpu[i] = (threads.getCurrentThreadCpuTime() - c0) / 1e6;
                ms[i] = st.millis();
                pages[i] = st.pages();
            }
            return new Sample(ms, cpu, pages);
        }

        @Override
        public void close() {
            scanner.close();
            qemu.close();
        }
    }

    private static boolean heartbeatSeen(QemuCommand c) {
        try {
            return QemuTestSupport.console(c).contains("FERRY-GUEST start");
        } catch (java.io.IOException e) {
            return false;
        }
    }

    /** Wall time of each scan, the scanning thread's CPU time (the kernel's work), pages found. */
    private record Sample(double[] millis, double[] cpuMillis, long[] pages) {
        double median() {
            double[] s = millis.clone();
            Arrays.sort(s);
            return s[s.length / 2];
        }

        @Override
        public String toString() {
            double[] s = millis.clone();
            Arrays.sort(s);
            double[] c = cpuMillis.clone();
            Arrays.sort(c);
            long[] p = pages.clone();
            Arrays.sort(p);
            LongSupplier sum = () -> Arrays.stream(pages).sum();
            return String.format(
                    "wall min %.2f / median %.2f / max %.2f ms (CPU median %.2f ms), pages per scan median %d "
                            + "(max %d, total %d)",
                    s[0],
                    s[s.length / 2],
                    s[s.length - 1],
                    c[c.length / 2],
                    p[p.length / 2],
                    p[p.length - 1],
                    sum.getAsLong());
        }
    }
}
