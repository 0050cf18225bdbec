package dev.ferry.chaos.nemesis;

import dev.ferry.chaos.history.History;
import dev.ferry.testkit.netns.AgentDaemon;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.Set;

/**
 * Jumps an agent's wall clock forward or back (libfaketime, changed at run time through its
 * timestamp file); the monotonic clock is left alone, as a real step of the wall clock leaves it.
 * Healing sets every touched clock back to the machine's.
 */
public final class ClockNemesis implements Nemesis {
    private final History history;
    private final Set<AgentDaemon> touched = new LinkedHashSet<>();

    public ClockNemesis(History history) {
        this.history = history;
    }

    @Override
    public String name() {
        return "clock";
    }

    public synchronized void jump(AgentDaemon agent, Duration offset) {
        history.fault("clock", true, agent.hostId() + " wall clock " + (offset.isNegative() ? "" : "+") + offset);
        agent.setClockOffset(offset);
        touched.add(agent);
    }

    @Override
    public synchronized void heal() {
        for (AgentDaemon a : touched) {
            a.setClockOffset(Duration.ZERO);
            history.fault("clock", false, a.hostId() + " wall clock back");
        }
        touched.clear();
    }
}
