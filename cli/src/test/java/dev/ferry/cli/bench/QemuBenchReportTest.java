package dev.ferry.cli.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cli.Json;
import dev.ferry.cli.bench.MigrationRun.Mode;
import dev.ferry.cli.bench.MigrationRun.Outcome;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class QemuBenchReportTest {
    private static final long G = 1L << 30;

    private static QemuBench.Settings settings(List<BenchWorkload> workloads) {
        return new QemuBench.Settings(
                List.of(G),
                workloads,
                List.of(Mode.FERRY, Mode.QEMU_SINGLE, Mode.QEMU_MULTIFD),
                3,
                Duration.ofMillis(300),
                2,
                10L << 30,
                Duration.ofSeconds(5),
                Duration.ofSeconds(5),
                Duration.ofSeconds(60),
                true,
                true,
                true,
                4,
                100L << 20);
    }

    private static MigrationRun run(
            Mode m,
            BenchWorkload w,
            int rep,
            Outcome o,
            double total,
            double downtime,
            long wire,
            long rounds,
            double cpu,
            int stale) {
        boolean arrived = o.switchedOver();
        return new MigrationRun(
                m,
                G,
                w,
                rep,
                o,
                total,
                arrived ? downtime : Double.NaN,
                wire,
                rounds,
                cpu,
                m == Mode.FERRY ? cpu * 0.8 : Double.NaN,
                m == Mode.FERRY ? cpu * 0.2 : cpu,
                2048,
                2048,
                arrived ? stale : -1,
                arrived ? stale : 0,
                arrived,
                false,
                null,
                Map.of());
    }

    @Test
    void mediansAreTakenPerCellAndRatiosAreFerryOverQemu() {
        List<MigrationRun> runs = new ArrayList<>();
        BenchWorkload w = BenchWorkload.WS32M;
        runs.add(run(Mode.FERRY, w, 1, Outcome.COMPLETED, 1200, 100, 33_000_000, 2, 2.0, 0));
        runs.add(run(Mode.FERRY, w, 2, Outcome.COMPLETED, 1000, 90, 32_000_000, 2, 1.8, 0));
        runs.add(run(Mode.FERRY, w, 3, Outcome.COMPLETED, 5000, 400, 35_000_000, 3, 9.0, 0));
        runs.add(run(Mode.QEMU_MULTIFD, w, 1, Outcome.COMPLETED, 4000, 20, 50_000_000, 4, 7.0, 100));
        runs.add(run(Mode.QEMU_MULTIFD, w, 2, Outcome.COMPLETED, 3900, 25, 49_000_000, 4, 6.8, 0));
        runs.add(run(Mode.QEMU_MULTIFD, w, 3, Outcome.COMPLETED, 8000, 15, 64_000_000, 5, 8.4, 400));
        QemuBenchReport r = new QemuBenchReport(settings(List.of(w)), runs, "test machine");
        QemuBenchReport.Cell ferry = r.cell(G, w, Mode.FERRY);
        QemuBenchReport.Cell multifd = r.cell(G, w, Mode.QEMU_MULTIFD);
        assertEquals(1200, ferry.median(QemuBenchReport.Figure.TOTAL));
        assertEquals(100, ferry.median(QemuBenchReport.Figure.DOWNTIME));
        assertEquals(4000, multifd.median(QemuBenchReport.Figure.TOTAL));
        assertEquals(0.3, QemuBenchReport.ratio(ferry, multifd, QemuBenchReport.Figure.TOTAL), 1e-9);
        assertEquals(5.0, QemuBenchReport.ratio(ferry, multifd, QemuBenchReport.Figure.DOWNTIME), 1e-9);
        assertEquals(0.66, QemuBenchReport.ratio(ferry, multifd, QemuBenchReport.Figure.WIRE), 1e-9);
        assertEquals(2, multifd.runsWithStale());
        assertEquals(500, multifd.staleLines());
        assertEquals("3/3 completed", multifd.outcomes());
        assertNull(r.cell(G, w, Mode.QEMU_SINGLE), "no runs, no cell");

        String table = r.table();
        assertTrue(
                table.contains("| 1.0 GiB | ws32m | ferry | 3/3 completed | 1200 | 100 | 33.0 | 2 | 2.00 | 1.60 |"),
                table);
        assertTrue(table.contains("| 1.0 GiB | ws32m | qemu-multifd | 0.30 | 5.00 | 0.66 | 0.50 | 0.29 |"), table);
        assertTrue(table.contains("2/3 runs, 500 STALE lines"), table);
        assertTrue(table.contains("none (3 runs)"), table);
    }

    @Test
    void aMigrationThatNeverSwitchedOverHasNoDowntimeAndNoTimeRatio() {
        BenchWorkload w = BenchWorkload.NONCONVERGING;
        List<MigrationRun> runs = List.of(
                run(Mode.FERRY, w, 1, Outcome.FORCED, 40_000, 6_000, 3_000_000_000L, 9, 20, 0),
                run(Mode.QEMU_MULTIFD, w, 1, Outcome.NOT_CONVERGED, 60_100, 0, 5_400_000_000L, 10, 18, 0),
                run(Mode.QEMU_MULTIFD_AC, w, 1, Outcome.COMPLETED, 30_000, 54, 2_800_000_000L, 20, 3, 1));
        QemuBenchReport r = new QemuBenchReport(settings(List.of(w)), runs, "test machine");
        QemuBenchReport.Cell ferry = r.cell(G, w, Mode.FERRY);
        QemuBenchReport.Cell qemu = r.cell(G, w, Mode.QEMU_MULTIFD);
        assertFalse(qemu.switchedOver());
        assertTrue(Double.isNaN(qemu.median(QemuBenchReport.Figure.DOWNTIME)));
        assertTrue(Double.isNaN(QemuBenchReport.ratio(ferry, qemu, QemuBenchReport.Figure.TOTAL)));
        assertEquals(9 / 10.0, QemuBenchReport.ratio(ferry, qemu, QemuBenchReport.Figure.ROUNDS), 1e-9);
        String table = r.table();
        assertTrue(
                table.contains(
                        "| 1.0 GiB | nonconverging | qemu-multifd | 1/1 not converged, cancelled | > 60100 | – |"),
                table);
        assertTrue(table.contains("| 1.0 GiB | nonconverging | ferry | 1/1 forced switchover | 40000 | 6000 |"), table);
        assertTrue(table.contains("QEMU never switched over"), table);
        assertTrue(table.contains("not checked (never ran there)"), table);
        assertTrue(table.contains("both capped at 100 MiB/s"), table);
        assertTrue(table.contains("| 1.0 GiB | nonconverging | qemu-multifd-ac | 1.33 | 111.11 |"), table);

        String json = Json.write(r.toJson());
        assertFalse(json.contains("NaN"), "JSON has no NaN: " + json);
        assertTrue(json.contains("\"outcome\" : \"not_converged\""), json);
    }

    @Test
    void medianOfAnEvenCountIsTheMeanOfTheMiddleTwoAndNaNIsSkipped() {
        assertEquals(2.5, QemuBenchReport.median(new double[] {4, 1, 2, 3}));
        assertEquals(3, QemuBenchReport.median(new double[] {Double.NaN, 3}));
        assertTrue(Double.isNaN(QemuBenchReport.median(new double[] {})));
    }

    @Test
    void settingsParseTheCommandLine() {
        QemuBench.Settings s = QemuBench.parse(
                "1G, 4G",
                "idle,ws32m,ws256m,nonconverging",
                "ferry,qemu-multifd",
                3,
                300,
                2,
                "10G",
                5,
                5,
                60,
                true,
                true,
                true,
                4,
                "100M");
        assertEquals(List.of(G, 4 * G), s.sizes());
        assertEquals(
                List.of(BenchWorkload.IDLE, BenchWorkload.WS32M, BenchWorkload.WS256M, BenchWorkload.NONCONVERGING),
                s.workloads());
        assertEquals(List.of(Mode.FERRY, Mode.QEMU_MULTIFD), s.modes());
        assertEquals(10L << 30, s.maxBandwidth());
        assertEquals(100L << 20, s.nonconvergingCap());
        org.junit.jupiter.api.Assertions.assertThrows(
                IllegalArgumentException.class,
                () -> QemuBench.parse("1G", "busy", "ferry", 1, 300, 2, "10G", 5, 5, 60, true, true, true, 4, "0"));
        org.junit.jupiter.api.Assertions.assertThrows(
                IllegalArgumentException.class,
                () -> QemuBench.parse("1G", "idle", "ferry", 0, 300, 2, "10G", 5, 5, 60, true, true, true, 4, "0"));
    }
}
