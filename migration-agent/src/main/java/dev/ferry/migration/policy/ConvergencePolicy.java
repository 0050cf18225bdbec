package dev.ferry.migration.policy;

import java.time.Duration;
import java.util.List;
import java.util.Objects;

/**
 * Decides, after each pre-copy round, whether to run another round, switch over, or give up.
 * A pure function of its inputs, so every branch is unit-tested.
 *
 * <p>Switch over when the bytes still dirty, sent at the measured bandwidth, plus the fixed cost
 * of a switchover, fit the downtime limit (like QEMU's downtime-limit), unless one more round is
 * cheap and would at least halve what the pause has to carry: a round that moves the rest takes
 * about the time the pause would spend on it, and leaves only what the guest dirties meanwhile, so
 * while the guest dirties memory at less than half the bandwidth, every round halves the pause for
 * a round's time of the guest still running. The limit is a ceiling, not a target. Otherwise continue, until
 * the round or time limit, or until the dirty set has stopped shrinking for
 * {@link Settings#stallRounds()} rounds; then force the switchover or cancel, by setting (like
 * virsh's --timeout with --timeout-suspend or --timeout-abort).
 */
public final class ConvergencePolicy {
    private ConvergencePolicy() {}

    public enum OnTimeout {
        FORCE_SWITCHOVER,
        CANCEL
    }

    /**
     * @param downtimeLimit the longest pause the operator accepts
     * @param maxRounds rounds after round 0 before the timeout action
     * @param maxTime time since the migration started before the timeout action
     * @param stallRounds rounds without a new low in dirty bytes before the timeout action
     */
    public record Settings(
            Duration downtimeLimit, int maxRounds, Duration maxTime, int stallRounds, OnTimeout onTimeout) {
        public Settings {
            Objects.requireNonNull(downtimeLimit);
            Objects.requireNonNull(maxTime);
            Objects.requireNonNull(onTimeout);
            if (downtimeLimit.isNegative() || downtimeLimit.isZero()) {
                throw new IllegalArgumentException("downtime limit must be positive");
            }
            if (maxRounds < 1 || stallRounds < 1) {
                throw new IllegalArgumentException("round limits must be at least 1");
            }
        }

        public static Settings defaults() {
            return new Settings(Duration.ofMillis(300), 30, Duration.ofMinutes(10), 5, OnTimeout.FORCE_SWITCHOVER);
        }
    }

    /**
     * What the sender knows after collecting the dirty log following round {@code roundsDone - 1}.
     *
     * @param roundsDone rounds sent so far, round 0 included
     * @param remainingBytes bytes dirty now and not yet sent
     * @param bandwidthBytesPerSec measured sending rate
     * @param elapsed time since the migration started
     * @param dirtyRateBytesPerSec bytes the guest dirtied per second since the last decision (NaN: unknown)
     * @param switchoverCost fixed cost of a switchover besides the remaining pages (device state, commit, resume)
     * @param remainingHistory remaining bytes at every earlier decision, oldest first
     */
    public record Inputs(
            int roundsDone,
            long remainingBytes,
            double bandwidthBytesPerSec,
            double dirtyRateBytesPerSec,
            Duration elapsed,
            Duration switchoverCost,
            List<Long> remainingHistory) {
        public Inputs {
            remainingHistory = List.copyOf(remainingHistory);
        }
    }

    public sealed interface Decision {
        Duration expectedDowntime();
    }

    public record Continue(Duration expectedDowntime) implements Decision {}

    public record Switchover(Duration expectedDowntime) implements Decision {}

    /** The limit was reached; switch over anyway, with a longer pause than asked. */
    public record ForcedSwitchover(Duration expectedDowntime, String reason) implements Decision {}

    /** The limit was reached; stop, the VM keeps running on the source. */
    public record GiveUp(Duration expectedDowntime, String reason) implements Decision {}

    public static Duration expectedDowntime(long remainingBytes, double bandwidthBytesPerSec, Duration switchoverCost) {
        if (remainingBytes == 0) {
            return switchoverCost;
        }
        if (!(bandwidthBytesPerSec > 0)) {
            return Duration.ofDays(1);
        }
        double seconds = remainingBytes / bandwidthBytesPerSec;
        return switchoverCost.plusNanos((long) Math.min(seconds * 1e9, 86_400e9));
    }

    /**
     * Pages whose transfer takes less than this are not worth another round: the pause is then
     * dominated by the switchover's fixed cost.
     */
    static final Duration NEGLIGIBLE_PAGES = Duration.ofMillis(2);

    public static Decision decide(Settings settings, Inputs in) {
        Duration expected = expectedDowntime(in.remainingBytes(), in.bandwidthBytesPerSec(), in.switchoverCost());
        String limit = null;
        int iterativeRounds = in.roundsDone() - 1;
        if (iterativeRounds >= settings.maxRounds()) {
            limit = "reached " + settings.maxRounds() + " rounds";
        } else if (in.elapsed().compareTo(settings.maxTime()) >= 0) {
            limit = "reached the time limit of " + settings.maxTime().toSeconds() + " s";
        } else if (stalled(in.remainingHistory(), in.remainingBytes(), settings.stallRounds())) {
            limit = "dirty memory stopped shrinking for " + settings.stallRounds() + " rounds";
        }
        if (in.remainingBytes() == 0 || expected.compareTo(settings.downtimeLimit()) <= 0) {
            return limit == null && anotherRoundHalvesThePause(in) ? new Continue(expected) : new Switchover(expected);
        }
        if (limit == null) {
            return new Continue(expected);
        }
        String reason = String.format(
                "%s: %d MiB still dirty at %.0f MiB/s needs about %d ms of downtime, limit %d ms",
                limit,
                in.remainingBytes() >> 20,
                in.bandwidthBytesPerSec() / (1 << 20),
                expected.toMillis(),
                settings.downtimeLimit().toMillis());
        return settings.onTimeout() == OnTimeout.FORCE_SWITCHOVER
                ? new ForcedSwitchover(expected, reason)
                : new GiveUp(expected, reason);
    }

    /**
     * True when the rest is worth moving before the pause: its transfer is not negligible, the
     * guest would dirty less than half of it again during that round, and the last round did halve
     * it (so a guest that rewrites a small hot set faster than the prediction says stops this at once).
     */
    static boolean anotherRoundHalvesThePause(Inputs in) {
        if (in.remainingBytes() == 0 || !(in.bandwidthBytesPerSec() > 0) || !(in.dirtyRateBytesPerSec() >= 0)) {
            return false;
        }
        double pagesSeconds = in.remainingBytes() / in.bandwidthBytesPerSec();
        if (pagesSeconds * 1e9 <= NEGLIGIBLE_PAGES.toNanos()) {
            return false;
        }
        double next = in.dirtyRateBytesPerSec() * pagesSeconds;
        if (next * 2 > in.remainingBytes()) {
            return false;
        }
        List<Long> h = in.remainingHistory();
        return h.isEmpty() || in.remainingBytes() * 2 <= h.get(h.size() - 1);
    }

    /** True when none of the last {@code rounds} decisions (now included) set a new low. */
    static boolean stalled(List<Long> history, long now, int rounds) {
        if (history.size() < rounds) {
            return false;
        }
        int split = history.size() - rounds + 1;
        long bestBefore = Long.MAX_VALUE;
        for (int i = 0; i < split; i++) {
            bestBefore = Math.min(bestBefore, history.get(i));
        }
        long bestSince = now;
        for (int i = split; i < history.size(); i++) {
            bestSince = Math.min(bestSince, history.get(i));
        }
        return bestSince >= bestBefore;
    }
}
