package dev.ferry.chaos.runner;

import dev.ferry.chaos.checker.Violation;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The table a chaos run prints: per scenario, runs, faults, violations of I1-I5, recovery p50/max. */
public final class Report {
    private final List<RunResult> runs = new ArrayList<>();

    public synchronized void add(RunResult r) {
        runs.add(r);
    }

    public synchronized List<RunResult> runs() {
        return List.copyOf(runs);
    }

    public synchronized boolean passed() {
        return runs.stream().allMatch(RunResult::passed);
    }

    public synchronized String table() {
        Map<String, List<RunResult>> by = new LinkedHashMap<>();
        runs.forEach(
                r -> by.computeIfAbsent(r.scenario(), k -> new ArrayList<>()).add(r));
        StringBuilder b = new StringBuilder();
        b.append(String.format(
                "%-28s %5s %6s %4s %4s %4s %4s %4s %6s %9s %9s%n",
                "scenario", "runs", "faults", "I1", "I2", "I3", "I4", "I5", "errors", "rec p50", "rec max"));
        by.forEach((id, rs) -> {
            int[] v = new int[6];
            int faults = 0;
            int errors = 0;
            List<Long> rec = new ArrayList<>();
            for (RunResult r : rs) {
                faults += r.faults();
                errors += r.error().isEmpty() ? 0 : 1;
                rec.addAll(r.recoveriesNanos());
                for (Violation x : r.violations()) {
                    v[Integer.parseInt(x.invariant().substring(1))]++;
                }
            }
            rec.sort(Long::compare);
            String p50 = rec.isEmpty() ? "-" : String.format("%.1f s", rec.get(rec.size() / 2) / 1e9);
            String max = rec.isEmpty() ? "-" : String.format("%.1f s", rec.getLast() / 1e9);
            b.append(String.format(
                    "%-28s %5d %6d %4d %4d %4d %4d %4d %6d %9s %9s%n",
                    id, rs.size(), faults, v[1], v[2], v[3], v[4], v[5], errors, p50, max));
        });
        for (RunResult r : runs) {
            for (Violation x : r.violations()) {
                b.append("  ")
                        .append(r.scenario())
                        .append(" seed ")
                        .append(r.seed())
                        .append(": ")
                        .append(x)
                        .append('\n');
            }
            if (!r.error().isEmpty()) {
                b.append("  ")
                        .append(r.scenario())
                        .append(" seed ")
                        .append(r.seed())
                        .append(": error: ")
                        .append(r.error())
                        .append('\n');
            }
        }
        return b.toString();
    }
}
