package dev.ferry.cli.bench;

import dev.ferry.cli.Sizes;
import dev.ferry.cli.bench.MigrationRun.Mode;
import dev.ferry.cli.bench.MigrationRun.Outcome;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.ToDoubleFunction;

/**
 * The results of `ferry bench qemu`: every run, the medians per guest size, workload and mode,
 * and Ferry's figures as ratios of QEMU's. Pure: built from runs, so it is unit-tested.
 */
public final class QemuBenchReport {
    /** A figure that can be compared across modes. */
    enum Figure {
        TOTAL("total", MigrationRun::totalMs),
        DOWNTIME("downtime", MigrationRun::downtimeMs),
        WIRE("wire bytes", r -> r.wireBytes()),
        ROUNDS("rounds", r -> r.rounds()),
        CPU("migration CPU", MigrationRun::migrationCpuSeconds);

        final String label;
        final ToDoubleFunction<MigrationRun> get;

        Figure(String label, ToDoubleFunction<MigrationRun> get) {
            this.label = label;
            this.get = get;
        }
    }

    /** The runs of one mode on one guest size and workload. */
    record Cell(long guestBytes, BenchWorkload workload, Mode mode, List<MigrationRun> runs) {
        /** Runs whose guest reached the destination; the figures are medians over these when there are any. */
        List<MigrationRun> counted() {
            List<MigrationRun> s =
                    runs.stream().filter(r -> r.outcome().switchedOver()).toList();
            return s.isEmpty() ? runs : s;
        }

        boolean switchedOver() {
            return runs.stream().anyMatch(r -> r.outcome().switchedOver());
        }

        double median(Figure f) {
            if (f == Figure.DOWNTIME && !switchedOver()) {
                return Double.NaN;
            }
            return QemuBenchReport.median(counted().stream().mapToDouble(f.get).toArray());
        }

        double median(ToDoubleFunction<MigrationRun> f) {
            return QemuBenchReport.median(counted().stream().mapToDouble(f).toArray());
        }

        /** "3/3 completed", "2 forced switchover, 1 failed". */
        String outcomes() {
            Map<Outcome, Integer> n = new LinkedHashMap<>();
            for (MigrationRun r : runs) {
                n.merge(r.outcome(), 1, Integer::sum);
            }
            if (n.size() == 1) {
                var e = n.entrySet().iterator().next();
                return e.getValue() + "/" + runs.size() + " " + e.getKey().label;
            }
            List<String> parts = new ArrayList<>();
            n.forEach((o, c) -> parts.add(c + " " + o.label));
            return String.join(", ", parts);
        }

        /** Runs in which the guest found stale pages on the destination, and how many lines in all. */
        int runsWithStale() {
            return (int) runs.stream()
                    .filter(r -> r.staleLines() > 0 || r.staleCounter() > 0)
                    .count();
        }

        int runsChecked() {
            return (int) runs.stream().filter(r -> r.staleLines() >= 0).count();
        }

        long staleLines() {
            return runs.stream().mapToLong(r -> Math.max(0, r.staleLines())).sum();
        }
    }

    private final QemuBench.Settings settings;
    private final List<MigrationRun> runs;
    private final String machine;

    public QemuBenchReport(QemuBench.Settings settings, List<MigrationRun> runs, String machine) {
        this.settings = settings;
        this.runs = List.copyOf(runs);
        this.machine = machine;
    }

    public List<MigrationRun> runs() {
        return runs;
    }

    /** One cell per guest size, workload and mode that has runs, in the order of the settings. */
    List<Cell> cells() {
        List<Cell> out = new ArrayList<>();
        for (long size : settings.sizes()) {
            for (BenchWorkload w : settings.workloads()) {
                for (Mode m : Mode.values()) {
                    List<MigrationRun> rs = runs.stream()
                            .filter(r -> r.guestBytes() == size && r.workload() == w && r.mode() == m)
                            .toList();
                    if (!rs.isEmpty()) {
                        out.add(new Cell(size, w, m, rs));
                    }
                }
            }
        }
        return out;
    }

    Cell cell(long size, BenchWorkload w, Mode m) {
        for (Cell c : cells()) {
            if (c.guestBytes() == size && c.workload() == w && c.mode() == m) {
                return c;
            }
        }
        return null;
    }

    /**
     * Ferry's median over QEMU's, or NaN where one side has no figure (a migration that never
     * switched over has no downtime, and its total time is only the time it was given).
     */
    static double ratio(Cell ferry, Cell qemu, Figure f) {
        if (ferry == null || qemu == null) {
            return Double.NaN;
        }
        boolean timeFigure = f == Figure.TOTAL || f == Figure.DOWNTIME;
        if (timeFigure && (!ferry.switchedOver() || !qemu.switchedOver())) {
            return Double.NaN;
        }
        double a = ferry.median(f);
        double b = qemu.median(f);
        if (Double.isNaN(a) || Double.isNaN(b) || b == 0) {
            return Double.NaN;
        }
        return a / b;
    }

    static double median(double[] values) {
        List<Double> v = new ArrayList<>();
        for (double d : values) {
            if (!Double.isNaN(d)) {
                v.add(d);
            }
        }
        if (v.isEmpty()) {
            return Double.NaN;
        }
        Collections.sort(v);
        int n = v.size();
        return n % 2 == 1 ? v.get(n / 2) : (v.get(n / 2 - 1) + v.get(n / 2)) / 2;
    }

    /** The figures and the ratios, as Markdown tables (readable on a terminal, pasted into docs/BENCHMARKS.md). */
    public String table() {
        StringBuilder b = new StringBuilder();
        b.append(String.format(
                Locale.ROOT,
                "Medians of %d run(s) per row; downtime limit %d ms on both; QEMU max-bandwidth %s/s; "
                        + "%d channels (Ferry streams, QEMU multifd)",
                settings.repeat(),
                settings.downtime().toMillis(),
                Sizes.format(settings.maxBandwidth()),
                settings.channels()));
        if (settings.workloads().contains(BenchWorkload.NONCONVERGING)) {
            b.append(
                    settings.nonconvergingCap() > 0
                            ? "; nonconverging: both capped at " + Sizes.format(settings.nonconvergingCap()) + "/s"
                            : "; nonconverging: uncapped");
        }
        b.append(".\n\n");
        b.append(
                "| guest | workload | mode | outcome | total ms | downtime ms | wire MB | rounds | migration CPU s | agent CPU s "
                        + "| guest writes/s before → during | stale pages on destination |\n");
        b.append("|---|---|---|---|---:|---:|---:|---:|---:|---:|---|---|\n");
        for (Cell c : cells()) {
            boolean notConverged =
                    !c.switchedOver() && c.runs().stream().allMatch(r -> r.outcome() == Outcome.NOT_CONVERGED);
            String total = notConverged ? "> " + num(c.median(Figure.TOTAL), 0) : num(c.median(Figure.TOTAL), 0);
            b.append(String.format(
                    Locale.ROOT,
                    "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s → %s | %s |%n",
                    Sizes.format(c.guestBytes()),
                    c.workload().id,
                    c.mode().id,
                    c.outcomes(),
                    total,
                    num(c.median(Figure.DOWNTIME), 0),
                    num(c.median(Figure.WIRE) / 1e6, 1),
                    num(c.median(Figure.ROUNDS), 0),
                    num(c.median(Figure.CPU), 2),
                    num(c.median(MigrationRun::agentCpuSeconds), 2),
                    num(c.median(MigrationRun::guestRateBefore), 0),
                    num(c.median(MigrationRun::guestRateDuring), 0),
                    stale(c)));
        }
        b.append("\nFerry / QEMU (median over median; below 1 means Ferry is lower):\n\n");
        b.append("| guest | workload | Ferry vs | total | downtime | wire bytes | rounds | migration CPU |\n");
        b.append("|---|---|---|---:|---:|---:|---:|---:|\n");
        for (long size : settings.sizes()) {
            for (BenchWorkload w : settings.workloads()) {
                Cell ferry = cell(size, w, Mode.FERRY);
                if (ferry == null) {
                    continue;
                }
                for (Mode m : Mode.values()) {
                    Cell q = m.qemu() ? cell(size, w, m) : null;
                    if (q == null) {
                        continue;
                    }
                    b.append(String.format(
                            Locale.ROOT,
                            "| %s | %s | %s | %s | %s | %s | %s | %s |%n",
                            Sizes.format(size),
                            w.id,
                            m.id,
                            ratioText(ferry, q, Figure.TOTAL),
                            ratioText(ferry, q, Figure.DOWNTIME),
                            ratioText(ferry, q, Figure.WIRE),
                            ratioText(ferry, q, Figure.ROUNDS),
                            ratioText(ferry, q, Figure.CPU)));
                }
            }
        }
        List<String> notes = notes();
        if (!notes.isEmpty()) {
            b.append("\n");
            notes.forEach(n -> b.append("- ").append(n).append('\n'));
        }
        return b.toString();
    }

    private static String ratioText(Cell ferry, Cell qemu, Figure f) {
        double r = ratio(ferry, qemu, f);
        if (!Double.isNaN(r)) {
            return num(r, 2);
        }
        if ((f == Figure.TOTAL || f == Figure.DOWNTIME) && !qemu.switchedOver() && ferry.switchedOver()) {
            return "QEMU never switched over";
        }
        if ((f == Figure.TOTAL || f == Figure.DOWNTIME) && !ferry.switchedOver()) {
            return "Ferry never switched over";
        }
        return "n/a";
    }

    private static String stale(Cell c) {
        int checked = c.runsChecked();
        if (checked == 0) {
            return "not checked (never ran there)";
        }
        int bad = c.runsWithStale();
        return bad == 0
                ? "none (" + checked + " run" + (checked == 1 ? "" : "s") + ")"
                : bad + "/" + checked + " runs, " + c.staleLines() + " STALE lines";
    }

    /** Notes on runs that did not simply complete, one line each. */
    List<String> notes() {
        List<String> out = new ArrayList<>();
        if (settings.workloads().contains(BenchWorkload.NONCONVERGING)) {
            out.add(
                    "nonconverging: the guest is CPU-bound, so its pre-migration CPU is no baseline for what it used during "
                            + "the migration; the CPU figures of that workload are not comparable");
        }
        for (MigrationRun r : runs) {
            if (r.note() != null && !r.note().isBlank()) {
                out.add(String.format(
                        Locale.ROOT,
                        "%s %s %s run %d: %s",
                        Sizes.format(r.guestBytes()),
                        r.workload().id,
                        r.mode().id,
                        r.repeat(),
                        r.note()));
            }
            if (r.outcome().switchedOver() && !r.guestAlive()) {
                out.add(String.format(
                        Locale.ROOT,
                        "%s %s %s run %d: the guest's heartbeat did not advance on the destination",
                        Sizes.format(r.guestBytes()),
                        r.workload().id,
                        r.mode().id,
                        r.repeat()));
            }
            if (Boolean.TRUE.equals(r.detail().get("heartbeatWentBack"))) {
                out.add(String.format(
                        Locale.ROOT,
                        "%s %s %s run %d: the guest's heartbeat counter went back on the destination "
                                + "(writes to its own kernel data were lost)",
                        Sizes.format(r.guestBytes()),
                        r.workload().id,
                        r.mode().id,
                        r.repeat()));
            }
            if (r.guestRestarted()) {
                out.add(String.format(
                        Locale.ROOT,
                        "%s %s %s run %d: the guest booted again on the destination",
                        Sizes.format(r.guestBytes()),
                        r.workload().id,
                        r.mode().id,
                        r.repeat()));
            }
        }
        return out;
    }

    static String num(double v, int decimals) {
        if (Double.isNaN(v) || Double.isInfinite(v)) {
            return "–";
        }
        return String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    public Map<String, Object> toJson() {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("machine", machine);
        Map<String, Object> s = new LinkedHashMap<>();
        s.put("sizes", settings.sizes());
        s.put(
                "workloads",
                settings.workloads().stream()
                        .map(w -> w.id + ": " + w.description)
                        .toList());
        s.put("modes", settings.modes().stream().map(m -> m.id).toList());
        s.put("repeat", settings.repeat());
        s.put("downtimeLimitMs", settings.downtime().toMillis());
        s.put("channels", settings.channels());
        s.put("qemuMaxBandwidth", settings.maxBandwidth());
        s.put("settleSeconds", settings.settle().toMillis() / 1000.0);
        s.put("observeSeconds", settings.observe().toMillis() / 1000.0);
        s.put("qemuTimeoutSeconds", settings.qemuTimeout().toSeconds());
        s.put("warmHostMemory", settings.warm());
        s.put("qemuWithFerryHook", settings.qemuHook());
        s.put("ferryWarmupMigrations", settings.ferryWarmup());
        s.put("nonconvergingBandwidthCap", settings.nonconvergingCap());
        out.put("settings", s);
        List<Map<String, Object>> cells = new ArrayList<>();
        for (Cell c : cells()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("guestBytes", c.guestBytes());
            m.put("workload", c.workload().id);
            m.put("mode", c.mode().id);
            m.put("outcomes", c.outcomes());
            for (Figure f : Figure.values()) {
                m.put(key(f) + "Median", round(c.median(f)));
            }
            m.put("agentCpuSecondsMedian", round(c.median(MigrationRun::agentCpuSeconds)));
            m.put("runsWithStalePages", c.runsWithStale());
            m.put("staleLines", c.staleLines());
            if (c.mode().qemu()) {
                Cell ferry = cell(c.guestBytes(), c.workload(), Mode.FERRY);
                Map<String, Object> ratios = new LinkedHashMap<>();
                for (Figure f : Figure.values()) {
                    ratios.put(key(f), round(ratio(ferry, c, f)));
                }
                m.put("ferryOverThis", ratios);
            }
            cells.add(m);
        }
        out.put("summary", cells);
        List<Map<String, Object>> rs = new ArrayList<>();
        for (MigrationRun r : runs) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("guestBytes", r.guestBytes());
            m.put("workload", r.workload().id);
            m.put("mode", r.mode().id);
            m.put("repeat", r.repeat());
            m.put("outcome", r.outcome().name().toLowerCase(Locale.ROOT));
            m.put("totalMs", round(r.totalMs()));
            m.put("downtimeMs", round(r.downtimeMs()));
            m.put("wireBytes", r.wireBytes());
            m.put("rounds", r.rounds());
            m.put("migrationCpuSeconds", round(r.migrationCpuSeconds()));
            m.put("agentCpuSeconds", round(r.agentCpuSeconds()));
            m.put("qemuCpuSeconds", round(r.qemuCpuSeconds()));
            m.put("guestWritesPerSecBefore", round(r.guestRateBefore()));
            m.put("guestWritesPerSecDuring", round(r.guestRateDuring()));
            m.put("staleLines", r.staleLines());
            m.put("staleCounter", r.staleCounter());
            m.put("guestAlive", r.guestAlive());
            m.put("guestRestarted", r.guestRestarted());
            if (r.note() != null) {
                m.put("note", r.note());
            }
            m.put("detail", r.detail());
            rs.add(m);
        }
        out.put("runs", rs);
        return out;
    }

    private static String key(Figure f) {
        return switch (f) {
            case TOTAL -> "totalMs";
            case DOWNTIME -> "downtimeMs";
            case WIRE -> "wireBytes";
            case ROUNDS -> "rounds";
            case CPU -> "migrationCpuSeconds";
        };
    }

    /** Three decimals; null for NaN (JSON has no NaN). */
    static Double round(double v) {
        if (Double.isNaN(v) || Double.isInfinite(v)) {
            return null;
        }
        return Math.round(v * 1000) / 1000.0;
    }
}
