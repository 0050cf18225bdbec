package dev.ferry.chaos.nemesis;

import dev.ferry.chaos.history.History;
import dev.ferry.testkit.netns.Daemon;
import java.time.Duration;
import java.util.LinkedHashSet;
import java.util.Set;

/**
 * Kills (-9) and freezes (SIGSTOP) daemons (agents, coordinator replicas, ZooKeeper servers) and
 * other processes (QEMU) by pid. Healing thaws every frozen process and restarts every killed
 * daemon with its own arguments and data (a crashed host coming back).
 */
public final class ProcessNemesis implements Nemesis {
    private final History history;
    private final Duration restartTimeout;
    private final Set<Daemon> killed = new LinkedHashSet<>();
    private final Set<Daemon> frozen = new LinkedHashSet<>();
    private final Set<Long> frozenPids = new LinkedHashSet<>();

    public ProcessNemesis(History history, Duration restartTimeout) {
        this.history = history;
        this.restartTimeout = restartTimeout;
    }

    @Override
    public String name() {
        return "process";
    }

    public synchronized void kill(Daemon d) {
        history.fault("kill", true, d.name() + " pid " + (d.isAlive() ? d.pid() : -1));
        d.kill();
        killed.add(d);
        frozen.remove(d);
    }

    public synchronized void freeze(Daemon d) {
        history.fault("freeze", true, d.name() + " pid " + d.pid());
        d.freeze();
        frozen.add(d);
    }

    public synchronized void thaw(Daemon d) {
        if (frozen.remove(d)) {
            d.thaw();
            history.fault("freeze", false, d.name());
        }
    }

    /** Restarts a killed daemon now (a host that crashed and came back). */
    public synchronized void restart(Daemon d) {
        if (killed.remove(d)) {
            d.restart(restartTimeout);
            history.fault("kill", false, d.name() + " restarted as pid " + d.pid());
        }
    }

    public synchronized void killPid(String label, long pid) {
        history.fault("kill", true, label + " pid " + pid);
        ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
    }

    public synchronized void freezePid(String label, long pid) {
        history.fault("freeze", true, label + " pid " + pid);
        Signals.send("STOP", pid);
        frozenPids.add(pid);
    }

    public synchronized void thawPid(long pid) {
        if (frozenPids.remove(pid)) {
            Signals.send("CONT", pid);
            history.fault("freeze", false, "pid " + pid);
        }
    }

    @Override
    public synchronized void heal() {
        for (Daemon d : Set.copyOf(frozen)) {
            thaw(d);
        }
        for (Long pid : Set.copyOf(frozenPids)) {
            thawPid(pid);
        }
        for (Daemon d : Set.copyOf(killed)) {
            restart(d);
        }
    }
}
