package dev.ferry.cli;

import dev.ferry.proto.agent.LimitChange;
import dev.ferry.proto.agent.MigrationRecord;
import dev.ferry.proto.agent.RoundProgress;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.LongFunction;

/**
 * A migration's record as one self-contained page: inline SVG charts (dirty rate against
 * bandwidth, remaining bytes and pages per round, the pause by step), the settings and the rounds
 * as a table. No script, no stylesheet or font from anywhere: it opens from a file on a host
 * without a network. The markup is well-formed XML (XHTML), so a test can parse it; every value
 * that comes from the cluster (a VM name, an error) is escaped.
 *
 * <p>Each data point is an SVG element with class {@code pt} and {@code data-round}/{@code
 * data-value} attributes, each with a {@code title} for a pointer: what a reader hovers over and
 * what a test counts.
 */
final class MigrationReportHtml {
    private MigrationReportHtml() {}

    private static final int W = 720;
    private static final int H = 260;
    private static final int LEFT = 80;
    private static final int RIGHT = 20;
    private static final int TOP = 30;
    private static final int BOTTOM = 40;

    private static final String DIRTY = "#d9480f";
    private static final String BANDWIDTH = "#1971c2";
    private static final String LIMIT = "#5f3dc4";
    private static final String REMAINING = "#2f9e44";
    private static final String PAGES = "#495057";
    private static final String[] STEPS = {"#1971c2", "#e8590c", "#2f9e44", "#ae3ec9", "#868e96"};

    /** One line of a chart. */
    record Series(String name, String color, List<Long> values, boolean dashed, boolean points) {}

    static String render(dev.ferry.proto.coordinator.MigrationReport rep) {
        MigrationRecord r = rep.getRecord();
        StringBuilder b = new StringBuilder(32 * 1024);
        String title = "Migration of " + r.getVm() + " (" + r.getMigrationId() + ")";
        b.append("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n")
                .append("<meta charset=\"utf-8\"/>\n")
                // Nothing may load: no script, no outside resource, even if a value slipped through.
                .append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src"
                        + " 'unsafe-inline'; img-src data:\"/>\n")
                .append("<title>")
                .append(esc(title))
                .append("</title>\n<style>\n")
                .append("body{font-family:sans-serif;margin:24px;color:#212529;max-width:1100px}\n")
                .append("h1{font-size:20px}h2{font-size:16px;margin-top:28px}\n")
                .append("table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #dee2e6;padding:3px 8px;"
                        + "text-align:right}th{background:#f1f3f5}td.l,th.l{text-align:left}\n")
                .append("svg{background:#fff;border:1px solid #dee2e6}.axis{font-size:11px;fill:#495057}\n")
                .append(".legend{font-size:12px}.note{color:#c92a2a}\n")
                .append("</style>\n</head>\n<body>\n");
        b.append("<h1>").append(esc(title)).append("</h1>\n");
        b.append("<table>\n");
        row(b, "VM", r.getVm());
        row(b, "Migration", r.getMigrationId());
        row(b, "From → to", r.getSource() + " → " + r.getTarget());
        row(b, "State", ReportView.state(r));
        row(b, "Started", java.time.Instant.ofEpochMilli(r.getStartedAtMs()).toString());
        if (r.getFinishedAtMs() > 0) {
            row(
                    b,
                    "Finished",
                    java.time.Instant.ofEpochMilli(r.getFinishedAtMs()).toString());
        }
        row(b, "Settings", ReportView.settings(r.getOptions()));
        if (r.hasSummary()) {
            row(b, "Outcome", ProgressPrinter.summary(r.getSummary()));
        }
        if (!rep.getKeptBy().isEmpty()) {
            row(b, "Record kept by", rep.getKeptBy());
        }
        b.append("</table>\n");
        if (!rep.getNote().isEmpty()) {
            b.append("<p class=\"note\">").append(esc(rep.getNote())).append("</p>\n");
        }
        for (LimitChange c : r.getLimitChangesList()) {
            b.append("<p class=\"limit-change\">")
                    .append(esc(ReportView.describe(c)))
                    .append("</p>\n");
        }
        List<RoundProgress> rounds = r.getRoundsList();
        List<Long> roundNumbers = new ArrayList<>();
        List<Long> dirty = new ArrayList<>();
        List<Long> bandwidth = new ArrayList<>();
        List<Long> limit = new ArrayList<>();
        List<Long> remaining = new ArrayList<>();
        List<Long> pages = new ArrayList<>();
        boolean anyLimit = false;
        for (RoundProgress p : rounds) {
            roundNumbers.add((long) p.getRound());
            dirty.add(p.getDirtyRateBytesPerSec());
            bandwidth.add(p.getBandwidthBytesPerSec());
            limit.add(p.getMaxBandwidthLimitBytesPerSec());
            anyLimit |= p.getMaxBandwidthLimitBytesPerSec() > 0;
            remaining.add(p.getRemainingBytes());
            pages.add(p.getPagesSent());
        }
        List<Long> changeRounds = new ArrayList<>();
        for (LimitChange c : r.getLimitChangesList()) {
            changeRounds.add((long) c.getRound());
        }
        b.append("<h2>Dirty rate against bandwidth, per round</h2>\n");
        List<Series> rates = new ArrayList<>();
        rates.add(new Series("dirty rate", DIRTY, dirty, false, true));
        rates.add(new Series("bandwidth (measured)", BANDWIDTH, bandwidth, false, true));
        if (anyLimit) {
            rates.add(new Series("bandwidth limit", LIMIT, limit, true, false));
        }
        lineChart(b, "chart-rates", roundNumbers, rates, changeRounds, v -> Sizes.formatRate(v));
        b.append("<h2>Remaining bytes after each round</h2>\n");
        lineChart(
                b,
                "chart-remaining",
                roundNumbers,
                List.of(new Series("remaining", REMAINING, remaining, false, true)),
                changeRounds,
                Sizes::format);
        b.append("<h2>Pages sent per round</h2>\n");
        barChart(b, "chart-pages", roundNumbers, pages);
        b.append("<h2>The pause, by step</h2>\n");
        pauseChart(b, r);
        if (!rounds.isEmpty()) {
            b.append("<h2>Rounds</h2>\n<table id=\"rounds\">\n<tr>");
            for (String h : new String[] {
                "Round",
                "Pages",
                "Sent",
                "Wire",
                "Time",
                "Bandwidth",
                "Dirty rate",
                "Remaining",
                "Expected pause",
                "Bandwidth limit",
                "Downtime limit"
            }) {
                b.append("<th>").append(esc(h)).append("</th>");
            }
            b.append("</tr>\n");
            for (RoundProgress p : rounds) {
                b.append("<tr>");
                for (String c : new String[] {
                    String.valueOf(p.getRound()),
                    String.valueOf(p.getPagesSent()),
                    Sizes.format(p.getBytesSent()),
                    Sizes.format(p.getWireBytes()),
                    p.getRoundMs() + " ms",
                    Sizes.formatRate(p.getBandwidthBytesPerSec()),
                    Sizes.formatRate(p.getDirtyRateBytesPerSec()),
                    Sizes.format(p.getRemainingBytes()),
                    p.getExpectedDowntimeMs() + " ms",
                    ReportView.bandwidth(p.getMaxBandwidthLimitBytesPerSec()),
                    p.getDowntimeLimitMs() + " ms"
                }) {
                    b.append("<td>").append(esc(c)).append("</td>");
                }
                b.append("</tr>\n");
            }
            b.append("</table>\n");
        }
        if (!r.getMessagesList().isEmpty()) {
            b.append("<h2>Messages</h2>\n<ul>\n");
            for (String m : r.getMessagesList()) {
                b.append("<li>").append(esc(m)).append("</li>\n");
            }
            b.append("</ul>\n");
        }
        b.append("<p class=\"axis\">ferry report ")
                .append(esc(r.getMigrationId()))
                .append("</p>\n");
        b.append("</body>\n</html>\n");
        return b.toString();
    }

    private static void row(StringBuilder b, String k, String v) {
        b.append("<tr><th class=\"l\">")
                .append(esc(k))
                .append("</th><td class=\"l\">")
                .append(esc(v))
                .append("</td></tr>\n");
    }

    private static String num(double v) {
        return String.format(Locale.ROOT, "%.1f", v);
    }

    private static void open(StringBuilder b, String id, String label) {
        b.append("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"")
                .append(id)
                .append("\" width=\"")
                .append(W)
                .append("\" height=\"")
                .append(H)
                .append("\" viewBox=\"0 0 ")
                .append(W)
                .append(' ')
                .append(H)
                .append("\" role=\"img\" aria-label=\"")
                .append(esc(label))
                .append("\">\n");
    }

    private static void empty(StringBuilder b, String id, String why) {
        open(b, id, why);
        b.append("<text class=\"axis\" x=\"")
                .append(W / 2)
                .append("\" y=\"")
                .append(H / 2)
                .append("\" text-anchor=\"middle\">")
                .append(esc(why))
                .append("</text>\n</svg>\n");
    }

    private static double x(int i, int n) {
        int plot = W - LEFT - RIGHT;
        return n <= 1 ? LEFT + plot / 2.0 : LEFT + plot * (double) i / (n - 1);
    }

    private static double y(long v, long max) {
        int plot = H - TOP - BOTTOM;
        return TOP + plot - (max == 0 ? 0 : plot * (double) v / max);
    }

    /** Axes: four horizontal grid lines labelled by {@code fmt}, and the rounds along the bottom. */
    private static void axes(StringBuilder b, List<Long> rounds, long max, LongFunction<String> fmt, boolean bars) {
        for (int k = 0; k <= 4; k++) {
            long v = max * k / 4;
            double yy = y(v, max);
            b.append("<line x1=\"")
                    .append(LEFT)
                    .append("\" x2=\"")
                    .append(W - RIGHT)
                    .append("\" y1=\"")
                    .append(num(yy))
                    .append("\" y2=\"")
                    .append(num(yy))
                    .append("\" stroke=\"#e9ecef\"/>\n");
            b.append("<text class=\"axis\" x=\"")
                    .append(LEFT - 6)
                    .append("\" y=\"")
                    .append(num(yy + 4))
                    .append("\" text-anchor=\"end\">")
                    .append(esc(fmt.apply(v)))
                    .append("</text>\n");
        }
        int n = rounds.size();
        int step = Math.max(1, n / 12);
        for (int i = 0; i < n; i += step) {
            double xx = bars ? barX(i, n) + barWidth(n) / 2 : x(i, n);
            b.append("<text class=\"axis\" x=\"")
                    .append(num(xx))
                    .append("\" y=\"")
                    .append(H - BOTTOM + 16)
                    .append("\" text-anchor=\"middle\">")
                    .append(rounds.get(i))
                    .append("</text>\n");
        }
        b.append("<text class=\"axis\" x=\"")
                .append(LEFT + (W - LEFT - RIGHT) / 2)
                .append("\" y=\"")
                .append(H - 6)
                .append("\" text-anchor=\"middle\">round</text>\n");
    }

    private static void lineChart(
            StringBuilder b,
            String id,
            List<Long> rounds,
            List<Series> series,
            List<Long> changeRounds,
            LongFunction<String> fmt) {
        if (rounds.isEmpty()) {
            empty(b, id, "no rounds recorded");
            return;
        }
        long max = 1;
        for (Series s : series) {
            for (long v : s.values()) {
                max = Math.max(max, v);
            }
        }
        max = niceCeiling(max);
        open(b, id, series.getFirst().name() + " per round");
        axes(b, rounds, max, fmt, false);
        int n = rounds.size();
        // Where a limit changed: a vertical line at that round (or past the last one).
        for (long c : changeRounds) {
            int i = rounds.indexOf(c);
            double xx = i >= 0 ? x(i, n) : x(n - 1, n);
            b.append("<line class=\"limit-change\" data-round=\"")
                    .append(c)
                    .append("\" x1=\"")
                    .append(num(xx))
                    .append("\" x2=\"")
                    .append(num(xx))
                    .append("\" y1=\"")
                    .append(TOP)
                    .append("\" y2=\"")
                    .append(H - BOTTOM)
                    .append("\" stroke=\"")
                    .append(LIMIT)
                    .append("\" stroke-dasharray=\"2 3\"><title>limits changed in round ")
                    .append(c)
                    .append("</title></line>\n");
        }
        int legendX = LEFT;
        for (Series s : series) {
            StringBuilder pts = new StringBuilder();
            for (int i = 0; i < n; i++) {
                pts.append(num(x(i, n)))
                        .append(',')
                        .append(num(y(s.values().get(i), max)))
                        .append(' ');
            }
            b.append("<polyline class=\"series\" data-series=\"")
                    .append(esc(s.name()))
                    .append("\" fill=\"none\" stroke=\"")
                    .append(s.color())
                    .append("\" stroke-width=\"2\"")
                    .append(s.dashed() ? " stroke-dasharray=\"6 4\"" : "")
                    .append(" points=\"")
                    .append(pts.toString().trim())
                    .append("\"/>\n");
            if (s.points()) {
                for (int i = 0; i < n; i++) {
                    long v = s.values().get(i);
                    b.append("<circle class=\"pt\" data-series=\"")
                            .append(esc(s.name()))
                            .append("\" data-round=\"")
                            .append(rounds.get(i))
                            .append("\" data-value=\"")
                            .append(v)
                            .append("\" cx=\"")
                            .append(num(x(i, n)))
                            .append("\" cy=\"")
                            .append(num(y(v, max)))
                            .append("\" r=\"3.5\" fill=\"")
                            .append(s.color())
                            .append("\"><title>")
                            .append(esc(s.name() + ", round " + rounds.get(i) + ": " + fmt.apply(v)))
                            .append("</title></circle>\n");
                }
            }
            b.append("<rect x=\"")
                    .append(legendX)
                    .append("\" y=\"10\" width=\"12\" height=\"4\" fill=\"")
                    .append(s.color())
                    .append("\"/><text class=\"legend\" x=\"")
                    .append(legendX + 16)
                    .append("\" y=\"16\">")
                    .append(esc(s.name()))
                    .append("</text>\n");
            legendX += 30 + 7 * s.name().length();
        }
        b.append("</svg>\n");
    }

    private static double barWidth(int n) {
        return Math.max(2, (W - LEFT - RIGHT) / (double) n * 0.7);
    }

    private static double barX(int i, int n) {
        double slot = (W - LEFT - RIGHT) / (double) n;
        return LEFT + slot * i + (slot - barWidth(n)) / 2;
    }

    private static void barChart(StringBuilder b, String id, List<Long> rounds, List<Long> values) {
        if (rounds.isEmpty()) {
            empty(b, id, "no rounds recorded");
            return;
        }
        long max = 1;
        for (long v : values) {
            max = Math.max(max, v);
        }
        max = niceCeiling(max);
        open(b, id, "pages sent per round");
        axes(b, rounds, max, Long::toString, true);
        int n = rounds.size();
        for (int i = 0; i < n; i++) {
            long v = values.get(i);
            double top = y(v, max);
            b.append("<rect class=\"pt\" data-round=\"")
                    .append(rounds.get(i))
                    .append("\" data-value=\"")
                    .append(v)
                    .append("\" x=\"")
                    .append(num(barX(i, n)))
                    .append("\" y=\"")
                    .append(num(top))
                    .append("\" width=\"")
                    .append(num(barWidth(n)))
                    .append("\" height=\"")
                    .append(num(H - BOTTOM - top))
                    .append("\" fill=\"")
                    .append(PAGES)
                    .append("\"><title>round ")
                    .append(rounds.get(i))
                    .append(": ")
                    .append(v)
                    .append(" pages</title></rect>\n");
        }
        b.append("</svg>\n");
    }

    /** The pause as one horizontal bar per step, longest scale first, with the total. */
    private static void pauseChart(StringBuilder b, MigrationRecord r) {
        List<ReportView.PauseStep> steps = r.hasSummary() ? ReportView.pauseSteps(r.getSummary()) : List.of();
        if (steps.isEmpty()) {
            empty(b, "chart-pause", r.hasSummary() ? "the VM was never paused" : "the migration is still running");
            return;
        }
        long max = 1;
        for (ReportView.PauseStep s : steps) {
            max = Math.max(max, s.ms());
        }
        int rowH = 30;
        int height = TOP + rowH * steps.size() + 30;
        b.append("<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"chart-pause\" width=\"")
                .append(W)
                .append("\" height=\"")
                .append(height)
                .append("\" viewBox=\"0 0 ")
                .append(W)
                .append(' ')
                .append(height)
                .append("\" role=\"img\" aria-label=\"the pause by step\">\n");
        b.append("<text class=\"legend\" x=\"")
                .append(LEFT + 40)
                .append("\" y=\"18\">pause ")
                .append(r.getSummary().getDowntimeMs())
                .append(" ms in all</text>\n");
        int plot = W - LEFT - 40 - RIGHT - 60;
        for (int k = 0; k < steps.size(); k++) {
            ReportView.PauseStep s = steps.get(k);
            double w = plot * (double) s.ms() / max;
            int yy = TOP + rowH * k;
            b.append("<text class=\"axis\" x=\"")
                    .append(LEFT + 34)
                    .append("\" y=\"")
                    .append(yy + 16)
                    .append("\" text-anchor=\"end\">")
                    .append(esc(s.name()))
                    .append("</text>\n");
            b.append("<rect class=\"pt\" data-step=\"")
                    .append(esc(s.name()))
                    .append("\" data-value=\"")
                    .append(s.ms())
                    .append("\" x=\"")
                    .append(LEFT + 40)
                    .append("\" y=\"")
                    .append(yy + 4)
                    .append("\" width=\"")
                    .append(num(Math.max(1, w)))
                    .append("\" height=\"18\" fill=\"")
                    .append(STEPS[k % STEPS.length])
                    .append("\"><title>")
                    .append(esc(s.name() + ": " + s.ms() + " ms"))
                    .append("</title></rect>\n");
            b.append("<text class=\"axis\" x=\"")
                    .append(num(LEFT + 46 + Math.max(1, w)))
                    .append("\" y=\"")
                    .append(yy + 17)
                    .append("\">")
                    .append(s.ms())
                    .append(" ms</text>\n");
        }
        b.append("</svg>\n");
    }

    /** 1, 2 or 5 times a power of ten, at least {@code v}: round numbers on the axis. */
    static long niceCeiling(long v) {
        long p = 1;
        while (p * 10 <= v && p <= Long.MAX_VALUE / 10) {
            p *= 10;
        }
        for (long m : new long[] {1, 2, 5, 10}) {
            if (p * m >= v) {
                return p * m;
            }
        }
        return v;
    }

    /** Text for HTML and XML, in element content and in double-quoted attributes. */
    static String esc(String s) {
        StringBuilder b = new StringBuilder(s.length() + 16);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '&' -> b.append("&amp;");
                case '<' -> b.append("&lt;");
                case '>' -> b.append("&gt;");
                case '"' -> b.append("&quot;");
                case '\'' -> b.append("&#39;");
                default -> {
                    // Control characters are not allowed in XML 1.0: a name cannot smuggle one in.
                    if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') {
                        b.append('?');
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.toString();
    }
}
