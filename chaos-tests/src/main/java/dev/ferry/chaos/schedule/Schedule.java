package dev.ferry.chaos.schedule;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * What a scenario run does and when, decided before it starts from the run's seed alone: the same
 * seed and scenario plan the same steps (the faults, their targets, their moments, the workload's
 * choices). A run prints its seed and its schedule; {@code ferry chaos --seed S --scenarios N}
 * replays it.
 *
 * @param seed the run's seed
 * @param scenario the scenario's name
 * @param steps in the order they run
 */
public record Schedule(long seed, String scenario, List<Step> steps) {
    /** One step: at {@code atMillis} after the scenario's start, do {@code action} with {@code params}. */
    public record Step(long atMillis, String action, Map<String, String> params) {
        public Step {
            params = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(params));
        }

        public String param(String key) {
            String v = params.get(key);
            if (v == null) {
                throw new IllegalArgumentException(action + " has no " + key + ": " + params);
            }
            return v;
        }

        @Override
        public String toString() {
            return String.format("+%6d ms %s %s", atMillis, action, params);
        }
    }

    public Schedule {
        steps = List.copyOf(steps);
    }

    /** The steps of one action, in order. */
    public List<Step> steps(String action) {
        return steps.stream().filter(s -> s.action().equals(action)).toList();
    }

    public String describe() {
        StringBuilder b = new StringBuilder("scenario " + scenario + " seed " + seed + "\n");
        steps.forEach(s -> b.append("  ").append(s).append('\n'));
        return b.toString();
    }

    /** Draws a scenario's choices from its seed and writes them down as steps. */
    public static final class Planner {
        private final long seed;
        private final String scenario;
        private final SplittableRandom random;
        private final List<Step> steps = new ArrayList<>();

        public Planner(long seed, String scenario) {
            this.seed = seed;
            this.scenario = scenario;
            // Each scenario draws from its own stream: adding a scenario leaves the others' plans alone.
            this.random = new SplittableRandom(seed ^ (scenario.hashCode() * 0x9E3779B97F4A7C15L));
        }

        public <T> T pick(List<T> choices) {
            return choices.get(random.nextInt(choices.size()));
        }

        /** A number in [lo, hi]. */
        public long between(long lo, long hi) {
            return lo == hi ? lo : random.nextLong(lo, hi + 1);
        }

        public boolean chance(double p) {
            return random.nextDouble() < p;
        }

        /** Adds a step; params alternate key and value. */
        public Planner step(long atMillis, String action, String... params) {
            if (params.length % 2 != 0) {
                throw new IllegalArgumentException("params come in key, value pairs");
            }
            Map<String, String> m = new LinkedHashMap<>();
            for (int i = 0; i < params.length; i += 2) {
                m.put(params[i], params[i + 1]);
            }
            steps.add(new Step(atMillis, action, m));
            return this;
        }

        public Schedule build() {
            return new Schedule(seed, scenario, steps);
        }
    }
}
