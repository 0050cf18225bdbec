package dev.ferry.chaos.history;

import dev.ferry.testkit.netns.AgentDaemon;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Samples every copy of every guest from outside the agents, every {@code period}, on the runner's
 * clock: for each agent's run directories ({@code DATA/vms/VM}), the guest's console (its last
 * heartbeat and stale reports) and, for QEMU, its process ({@code qemu.pid}) and run state from
 * /proc. A copy is a host and a process: {@code host-1/4711} for a QEMU, {@code host-1/sim@PID.INODE} (agent pid, console file) for a
 * sim guest (it lives in the agent's process {@code PID}). Copies started outside any agent (a
 * negative control's second copy) are watched with {@link #watch}.
 */
public final class ProgressSampler implements AutoCloseable {
    private final History history;
    private final List<AgentDaemon> agents;
    private final Duration period;
    private final Map<String, Extra> extra = new LinkedHashMap<>();
    private final Map<String, String> procStates = new HashMap<>();
    private final Set<String> staleSeen = new HashSet<>();
    private final Thread thread;
    private volatile boolean stopped;

    private record Extra(String vm, Path console) {}

    private final String prefix;

    /** Samples the copies of VMs whose names start with {@code prefix} (a run's own VMs). */
    public ProgressSampler(History history, List<AgentDaemon> agents, Duration period, String prefix) {
        this.prefix = prefix;
        this.history = history;
        this.agents = List.copyOf(agents);
        this.period = period;
        this.thread = Thread.ofPlatform().daemon().name("ch-progress").unstarted(this::loop);
    }

    public ProgressSampler start() {
        thread.start();
        return this;
    }

    /** Samples a copy that no agent knows of: {@code copy} is its name in the history. */
    public synchronized void watch(String vm, String copy, Path console) {
        extra.put(copy, new Extra(vm, console));
    }

    private void loop() {
        while (!stopped) {
            try {
                sampleOnce();
            } catch (RuntimeException e) {
                // a run directory that vanished between listing and reading: the next sample sees it gone
            }
            try {
                Thread.sleep(period.toMillis());
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    /** One sample of every copy (also called by the runner for a last look). */
    public synchronized void sampleOnce() {
        for (AgentDaemon a : agents) {
            Path vms = a.dataDir().resolve("vms");
            if (!Files.isDirectory(vms)) {
                continue;
            }
            try (DirectoryStream<Path> dirs = Files.newDirectoryStream(vms)) {
                for (Path dir : dirs) {
                    Path console = dir.resolve("console.log");
                    if (!Files.exists(console)) {
                        continue;
                    }
                    String vm = dir.getFileName().toString();
                    if (!vm.startsWith(prefix)) {
                        continue;
                    }
                    String copy = copyOf(a, dir);
                    if (copy != null) {
                        sample(vm, copy, console);
                    }
                }
            } catch (IOException e) {
                // the next sample
            }
        }
        extra.forEach((copy, e) -> sample(e.vm(), copy, e.console()));
    }

    private void sample(String vm, String copy, Path console) {
        Consoles.Tail t = Consoles.read(console);
        history.observe(Observations.PROGRESS, vm, copy, Long.toString(t.heartbeat()));
        if ((t.stale() > 0 || !t.staleLine().isEmpty()) && staleSeen.add(vm + " " + copy)) {
            history.observe(
                    Observations.STALE,
                    vm,
                    copy,
                    t.staleLine().isEmpty() ? "stale=" + t.stale() : t.staleLine() + " (stale=" + t.stale() + ")");
        }
    }

    /** host/qemu-pid for a QEMU guest, host/sim@agent-pid for a sim guest; null if it has no process now. */
    private String copyOf(AgentDaemon a, Path dir) {
        Path pidFile = dir.resolve("qemu.pid");
        if (Files.exists(pidFile)) {
            try {
                String pid = Files.readString(pidFile).trim().split("\\s+")[0];
                String state = procState(Long.parseLong(pid));
                String copy = a.hostId() + "/" + pid;
                if (!state.equals(procStates.put(copy, state))) {
                    history.observe(Observations.PROC_STATE, dir.getFileName().toString(), copy, state);
                }
                return copy;
            } catch (IOException | NumberFormatException e) {
                return null;
            }
        }
        if (!a.isAlive()) {
            return null;
        }
        // A sim guest runs inside its agent, so the agent's pid alone would make a VM that left a
        // host and came back look like one copy that never stopped (scenario 11 saw "two copies"
        // that were one copy, then another at a later epoch). Each instance writes its own console
        // file: its inode tells the instances apart.
        try {
            Object key = Files.readAttributes(
                            dir.resolve("console.log"), java.nio.file.attribute.BasicFileAttributes.class)
                    .fileKey();
            String ino = key == null ? "" : key.toString().replaceAll(".*ino=([0-9]+).*", "$1");
            return a.hostId() + "/sim@" + a.pid() + (ino.isEmpty() ? "" : "." + ino);
        } catch (IOException e) {
            return null;
        }
    }

    /** The state letter of /proc/PID/stat (R, S, T, Z, ...), "gone" when there is no such process. */
    public static String procState(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
            return String.valueOf(stat.charAt(stat.lastIndexOf(')') + 2));
        } catch (IOException | RuntimeException e) {
            return "gone";
        }
    }

    @Override
    public void close() {
        stopped = true;
        thread.interrupt();
        try {
            thread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
