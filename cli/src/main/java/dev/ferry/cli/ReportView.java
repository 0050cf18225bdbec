package dev.ferry.cli;

import dev.ferry.proto.agent.LimitChange;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationRecord;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.RoundProgress;
import java.io.PrintStream;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A migration's record as `ferry report` shows it: text, JSON, and the pause broken down by step
 * (what {@link MigrationReportHtml} draws). Pure functions of the record.
 */
final class ReportView {
    private ReportView() {}

    /** One step of the pause and how long it took. */
    record PauseStep(String name, long ms) {}

    /**
     * The pause by step: final pages, device state, commit, resume, and what the total has beyond
     * them (verification and bookkeeping) as "other". Empty when the VM was never paused.
     */
    static List<PauseStep> pauseSteps(MigrationSummary s) {
        List<PauseStep> out = new ArrayList<>();
        if (s.getDowntimeMs() == 0
                && s.getFinalPagesMs() + s.getDeviceStateMs() + s.getCommitMs() + s.getResumeMs() == 0) {
            return out;
        }
        out.add(new PauseStep("final pages", s.getFinalPagesMs()));
        out.add(new PauseStep("device state", s.getDeviceStateMs()));
        out.add(new PauseStep("commit", s.getCommitMs()));
        out.add(new PauseStep("resume", s.getResumeMs()));
        long other = s.getDowntimeMs() - s.getFinalPagesMs() - s.getDeviceStateMs() - s.getCommitMs() - s.getResumeMs();
        if (other > 0) {
            out.add(new PauseStep("other", other));
        }
        return out;
    }

    static String state(MigrationRecord r) {
        return r.hasSummary() ? Json.status(r.getSummary()) : "running";
    }

    static String bandwidth(long bytesPerSecond) {
        return bytesPerSecond == 0 ? "unlimited" : Sizes.formatRate(bytesPerSecond);
    }

    static String settings(MigrationOptions o) {
        return String.format(
                Locale.ROOT,
                "downtime limit %d ms, bandwidth %s, streams %s, verify %s, mode %s, max rounds %s",
                o.getDowntimeMs() == 0 ? 300 : o.getDowntimeMs(),
                bandwidth(o.getMaxBandwidthBytesPerSec()),
                o.getStreams() == 0 ? "default" : String.valueOf(o.getStreams()),
                o.getVerify() ? "yes" : "no",
                o.getMode() == dev.ferry.proto.migration.TransferMode.TRANSFER_MODE_HYPERVISOR_NATIVE
                        ? "qemu-native"
                        : "precopy",
                o.getMaxRounds() == 0 ? "default" : String.valueOf(o.getMaxRounds()));
    }

    static void printText(dev.ferry.proto.coordinator.MigrationReport rep, PrintStream out) {
        MigrationRecord r = rep.getRecord();
        MigrationSummary s = r.getSummary();
        String state = state(r);
        out.printf(
                Locale.ROOT,
                "migration %s of %s: %s -> %s, %s%n",
                r.getMigrationId(),
                r.getVm(),
                r.getSource().isEmpty() ? "-" : r.getSource(),
                r.getTarget().isEmpty() ? "-" : r.getTarget(),
                state);
        out.printf(
                Locale.ROOT,
                "started %s%s%n",
                Instant.ofEpochMilli(r.getStartedAtMs()),
                r.getFinishedAtMs() == 0
                        ? ""
                        : ", finished " + Instant.ofEpochMilli(r.getFinishedAtMs())
                                + String.format(Locale.ROOT, ", total %.2f s", s.getTotalMs() / 1000.0));
        out.println("settings: " + settings(r.getOptions()));
        if (!rep.getKeptBy().isEmpty()) {
            out.println("record kept by " + rep.getKeptBy());
        }
        if (!rep.getNote().isEmpty()) {
            out.println("note: " + rep.getNote());
        }
        if (r.getRoundsCount() > 0) {
            out.println();
            out.printf(
                    "%5s %10s %11s %11s %8s %13s %13s %11s %9s %13s%n",
                    "ROUND",
                    "PAGES",
                    "SENT",
                    "WIRE",
                    "TIME",
                    "BANDWIDTH",
                    "DIRTY RATE",
                    "REMAINING",
                    "EXP.PAUSE",
                    "LIMIT");
            int change = 0;
            for (RoundProgress p : r.getRoundsList()) {
                while (change < r.getLimitChangesCount()
                        && r.getLimitChanges(change).getRound() <= p.getRound()) {
                    out.println("  " + describe(r.getLimitChanges(change++)));
                }
                out.printf(
                        Locale.ROOT,
                        "%5d %10d %11s %11s %8s %13s %13s %11s %9s %13s%n",
                        p.getRound(),
                        p.getPagesSent(),
                        Sizes.format(p.getBytesSent()),
                        Sizes.format(p.getWireBytes()),
                        p.getRoundMs() + " ms",
                        Sizes.formatRate(p.getBandwidthBytesPerSec()),
                        Sizes.formatRate(p.getDirtyRateBytesPerSec()),
                        Sizes.format(p.getRemainingBytes()),
                        p.getExpectedDowntimeMs() + " ms",
                        bandwidth(p.getMaxBandwidthLimitBytesPerSec()));
            }
            while (change < r.getLimitChangesCount()) {
                out.println("  " + describe(r.getLimitChanges(change++)));
            }
        } else if (r.getLimitChangesCount() > 0) {
            for (LimitChange c : r.getLimitChangesList()) {
                out.println(describe(c));
            }
        }
        for (String m : r.getMessagesList()) {
            if (m.startsWith("forcing")) {
                out.println(m);
            }
        }
        if (!r.hasSummary()) {
            out.println();
            out.println("still running: ferry migrate watch " + r.getMigrationId());
            return;
        }
        out.println();
        List<PauseStep> steps = pauseSteps(s);
        if (!steps.isEmpty()) {
            StringBuilder b = new StringBuilder("pause " + s.getDowntimeMs() + " ms:");
            String sep = " ";
            for (PauseStep p : steps) {
                b.append(sep).append(p.name()).append(' ').append(p.ms()).append(" ms");
                sep = ", ";
            }
            out.println(b);
        }
        if (s.getTotalMs() > 0 || !s.getError().isEmpty()) {
            out.println("outcome: " + ProgressPrinter.summary(s));
        }
        if (s.getFailedStep() != dev.ferry.proto.migration.MigrationStep.MIGRATION_STEP_INVALID) {
            out.println("failed step: "
                    + s.getFailedStep().name().replace("MIGRATION_STEP_", "").toLowerCase(Locale.ROOT));
        }
    }

    static String describe(LimitChange c) {
        return String.format(
                Locale.ROOT,
                "limits changed in round %d (%.1f s in): downtime limit %d ms, bandwidth %s",
                c.getRound(),
                c.getElapsedMs() / 1000.0,
                c.getDowntimeMs(),
                bandwidth(c.getMaxBandwidthBytesPerSec()));
    }

    static Map<String, Object> json(dev.ferry.proto.coordinator.MigrationReport rep) {
        MigrationRecord r = rep.getRecord();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("id", r.getMigrationId());
        m.put("vm", r.getVm());
        m.put("source", r.getSource());
        m.put("target", r.getTarget());
        m.put("state", state(r));
        m.put("startedAtMs", r.getStartedAtMs());
        m.put("finishedAtMs", r.getFinishedAtMs());
        m.put("keptBy", rep.getKeptBy());
        if (!rep.getNote().isEmpty()) {
            m.put("note", rep.getNote());
        }
        MigrationOptions o = r.getOptions();
        Map<String, Object> settings = new LinkedHashMap<>();
        settings.put("downtimeMs", o.getDowntimeMs() == 0 ? 300 : o.getDowntimeMs());
        settings.put("maxBandwidthBytesPerSec", o.getMaxBandwidthBytesPerSec());
        settings.put("streams", o.getStreams());
        settings.put("verify", o.getVerify());
        settings.put("maxRounds", o.getMaxRounds());
        m.put("settings", settings);
        List<Map<String, Object>> rounds = new ArrayList<>();
        for (RoundProgress p : r.getRoundsList()) {
            Map<String, Object> x = new LinkedHashMap<>();
            x.put("round", p.getRound());
            x.put("pages", p.getPagesSent());
            x.put("bytes", p.getBytesSent());
            x.put("wireBytes", p.getWireBytes());
            x.put("roundMs", p.getRoundMs());
            x.put("elapsedMs", p.getElapsedMs());
            x.put("bandwidthBytesPerSec", p.getBandwidthBytesPerSec());
            x.put("dirtyRateBytesPerSec", p.getDirtyRateBytesPerSec());
            x.put("remainingBytes", p.getRemainingBytes());
            x.put("expectedDowntimeMs", p.getExpectedDowntimeMs());
            x.put("maxBandwidthLimitBytesPerSec", p.getMaxBandwidthLimitBytesPerSec());
            x.put("downtimeLimitMs", p.getDowntimeLimitMs());
            rounds.add(x);
        }
        m.put("rounds", rounds);
        List<Map<String, Object>> changes = new ArrayList<>();
        for (LimitChange c : r.getLimitChangesList()) {
            Map<String, Object> x = new LinkedHashMap<>();
            x.put("round", c.getRound());
            x.put("elapsedMs", c.getElapsedMs());
            x.put("downtimeMs", c.getDowntimeMs());
            x.put("maxBandwidthBytesPerSec", c.getMaxBandwidthBytesPerSec());
            changes.add(x);
        }
        m.put("limitChanges", changes);
        m.put("messages", r.getMessagesList());
        if (r.hasSummary()) {
            m.put("summary", Json.migration(r.getSummary()));
            Map<String, Object> pause = new LinkedHashMap<>();
            for (PauseStep p : pauseSteps(r.getSummary())) {
                pause.put(p.name(), p.ms());
            }
            m.put("pauseSteps", pause);
        }
        return m;
    }
}
