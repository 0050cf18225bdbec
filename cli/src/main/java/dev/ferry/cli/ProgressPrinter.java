package dev.ferry.cli;

import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.RoundProgress;
import java.io.PrintStream;
import java.util.Locale;

/**
 * Shows a migration as it runs: one redrawn line with a bar on a terminal, plain lines (one per
 * round) otherwise, nothing at all for --json.
 */
final class ProgressPrinter {
    private final PrintStream out;
    private final boolean terminal;
    private final boolean quiet;
    private boolean lineOpen;

    ProgressPrinter(PrintStream out, boolean quiet) {
        this.out = out;
        this.quiet = quiet;
        var console = System.console();
        this.terminal = console != null && console.isTerminal() && System.getenv("FERRY_PLAIN") == null;
    }

    void event(MigrationEvent e) {
        if (quiet || e.hasSummary()) {
            return;
        }
        if (e.hasLimits()) {
            // `ferry migrate set` (or a drain's share): the same words as `ferry report`.
            line(ReportView.describe(e.getLimits()));
        } else if (e.hasRound()) {
            RoundProgress r = e.getRound();
            if (terminal) {
                redraw(bar(r));
            } else if (!r.getPartial()) {
                line(roundLine(r));
            }
        } else if (!e.getMessage().isEmpty()) {
            line(e.getMessage());
        }
    }

    void finish(MigrationSummary s) {
        if (quiet) {
            return;
        }
        if (lineOpen) {
            out.println();
            lineOpen = false;
        }
        out.println(summary(s));
    }

    private void redraw(String text) {
        out.print("\r\033[2K" + text);
        out.flush();
        lineOpen = true;
    }

    private void line(String text) {
        if (lineOpen) {
            out.println();
            lineOpen = false;
        }
        out.println(text);
    }

    static String roundLine(RoundProgress r) {
        return String.format(
                Locale.ROOT,
                "round %d: %s sent (%s on the wire) in %d ms at %s; dirtying %s; %s left, expected downtime %d ms",
                r.getRound(),
                Sizes.format(r.getBytesSent()),
                Sizes.format(r.getWireBytes()),
                r.getRoundMs(),
                Sizes.formatRate(r.getBandwidthBytesPerSec()),
                Sizes.formatRate(r.getDirtyRateBytesPerSec()),
                Sizes.format(r.getRemainingBytes()),
                r.getExpectedDowntimeMs());
    }

    static String bar(RoundProgress r) {
        int width = 24;
        double frac = r.getPagesPlanned() == 0 ? 1 : Math.min(1.0, (double) r.getPagesSent() / r.getPagesPlanned());
        int filled = (int) Math.round(frac * width);
        String bar = "#".repeat(filled) + "-".repeat(width - filled);
        String tail = r.getPartial()
                ? String.format(
                        Locale.ROOT,
                        "%s of %s",
                        Sizes.format(r.getBytesSent()),
                        Sizes.format(r.getPagesPlanned() * 4096))
                : String.format(
                        Locale.ROOT,
                        "%s at %s, %s left, est. downtime %d ms",
                        Sizes.format(r.getBytesSent()),
                        Sizes.formatRate(r.getBandwidthBytesPerSec()),
                        Sizes.format(r.getRemainingBytes()),
                        r.getExpectedDowntimeMs());
        return String.format(
                Locale.ROOT,
                "[%s] %3d%% round %d  %s  (%.1f s)",
                bar,
                (int) (frac * 100),
                r.getRound(),
                tail,
                r.getElapsedMs() / 1000.0);
    }

    static String summary(MigrationSummary s) {
        String status = Json.status(s);
        if (!status.equals("completed")) {
            return String.format(
                    Locale.ROOT,
                    "migration of %s from %s to %s %s after %.2f s: %s; %s",
                    s.getVm(),
                    s.getSource(),
                    s.getTarget(),
                    status,
                    s.getTotalMs() / 1000.0,
                    s.getError(),
                    "the VM stays on " + s.getSource());
        }
        StringBuilder b = new StringBuilder(String.format(
                Locale.ROOT,
                "migrated %s from %s to %s in %.2f s, downtime %d ms, %d rounds, %s of RAM as %s on the wire",
                s.getVm(),
                s.getSource(),
                s.getTarget(),
                s.getTotalMs() / 1000.0,
                s.getDowntimeMs(),
                s.getRounds(),
                Sizes.format(s.getRamBytes()),
                Sizes.format(s.getBytesTransferred())));
        if (s.getMemoryVerified()) {
            b.append(String.format(Locale.ROOT, "; memory verified equal (%d ms)", s.getVerifyMs()));
        }
        if (s.getForcedSwitchover()) {
            b.append("; switchover was forced (the guest dirtied memory faster than it could be sent)");
        }
        return b.toString();
    }
}
