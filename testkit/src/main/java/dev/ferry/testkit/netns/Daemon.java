package dev.ferry.testkit.netns;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * One daemon process of a {@link NetnsCluster} (a ZooKeeper server, a coordinator replica or an
 * agent), running inside its host's namespace with {@code ip netns exec}, which execs the command
 * in place: {@link #pid()} is the daemon's own pid, so signals reach it and not a wrapper.
 *
 * <p>The handle outlives the process: {@link #kill()} (SIGKILL, as a crash), {@link #freeze()}
 * and {@link #thaw()} (SIGSTOP/SIGCONT, as a long GC pause or a throttled host), and
 * {@link #restart()} with the same command line, environment and data directory. Output and
 * errors of every incarnation are appended to {@link #logFile()}, each start marked by a line.
 */
public class Daemon {
    /** What the daemon is. */
    public enum Role {
        ZOOKEEPER,
        COORDINATOR,
        AGENT
    }

    private final String name;
    private final Role role;
    private final NetnsHost host;
    private final List<String> command;
    private final Map<String, String> environment;
    private final Path logFile;
    private final Predicate<Daemon> ready;
    private final Runnable beforeStart;
    private Process process;
    private int starts;

    Daemon(
            String name,
            Role role,
            NetnsHost host,
            List<String> command,
            Map<String, String> environment,
            Path logFile,
            Predicate<Daemon> ready,
            Runnable beforeStart) {
        this.name = name;
        this.role = role;
        this.host = host;
        this.command = List.copyOf(command);
        this.environment = Map.copyOf(environment);
        this.logFile = logFile;
        this.ready = ready;
        this.beforeStart = beforeStart;
    }

    public String name() {
        return name;
    }

    public Role role() {
        return role;
    }

    /** The host (namespace, address, interfaces) this daemon runs on. */
    public NetnsHost host() {
        return host;
    }

    /** The command line inside the namespace (without {@code ip netns exec NS}). */
    public List<String> command() {
        return command;
    }

    /** Where stdout and stderr of every incarnation go. */
    public Path logFile() {
        return logFile;
    }

    /** How many times this daemon has been started (1 after the cluster started). */
    public synchronized int starts() {
        return starts;
    }

    /** The current incarnation's pid; fails if it was never started. */
    public synchronized long pid() {
        if (process == null) {
            throw new IllegalStateException(name + " was never started");
        }
        return process.pid();
    }

    public synchronized boolean isAlive() {
        return process != null && process.isAlive();
    }

    /** Starts a new incarnation; fails if one is running. Does not wait for it to be ready. */
    public synchronized void start() {
        if (process != null && process.isAlive()) {
            throw new IllegalStateException(name + " is running (pid " + process.pid() + "): kill it first");
        }
        beforeStart.run();
        List<String> cmd = host.wrap(command);
        try {
            Files.writeString(
                    logFile,
                    "---- " + Instant.now() + " start #" + (starts + 1) + ": " + String.join(" ", cmd) + "\n",
                    StandardCharsets.UTF_8,
                    java.nio.file.StandardOpenOption.CREATE,
                    java.nio.file.StandardOpenOption.APPEND);
            ProcessBuilder pb = new ProcessBuilder(cmd)
                    .redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.appendTo(logFile.toFile()))
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
            pb.environment().putAll(environment);
            process = pb.start();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start " + name, e);
        }
        starts++;
    }

    /** Waits until the daemon serves (its readiness probe holds); fails if it exits or {@code timeout} passes. */
    public void awaitReady(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!ready.test(this)) {
            if (!isAlive()) {
                throw new IllegalStateException(
                        name + " exited before it was ready; its log: " + logFile + "\n" + tail(30));
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(
                        name + " not ready after " + timeout.toMillis() + " ms; its log: " + logFile + "\n" + tail(30));
            }
            sleep(100);
        }
    }

    /** Starts a new incarnation with the same command, environment and data, and waits until it serves. */
    public void restart(Duration timeout) {
        start();
        awaitReady(timeout);
    }

    /** kill -9, and waits for the process to be gone. Its children (QEMU) are left as a crash leaves them. */
    public void kill() {
        Process p;
        synchronized (this) {
            p = process;
        }
        if (p == null || !p.isAlive()) {
            return;
        }
        p.destroyForcibly();
        awaitExit(p, Duration.ofSeconds(20));
    }

    /** SIGTERM (an orderly stop), and waits up to {@code timeout} for the process to exit. */
    public void terminate(Duration timeout) {
        Process p;
        synchronized (this) {
            p = process;
        }
        if (p == null || !p.isAlive()) {
            return;
        }
        signal("CONT"); // a frozen process cannot act on SIGTERM
        p.destroy();
        awaitExit(p, timeout);
    }

    /** SIGSTOP: the process stops being scheduled, sockets stay open (a long GC pause, swap, a cgroup freeze). */
    public void freeze() {
        signal("STOP");
    }

    /** SIGCONT. */
    public void thaw() {
        signal("CONT");
    }

    /** Sends {@code signal} (a name kill(1) knows: STOP, CONT, TERM, KILL, ...) to the current incarnation. */
    public void signal(String signal) {
        CommandResult r = Commands.run(List.of("kill", "-" + signal, Long.toString(pid())));
        if (!r.ok()) {
            throw new IllegalStateException("kill -" + signal + " " + name + ": " + r.describe());
        }
    }

    /** The last {@code lines} lines of the log (for failure messages). */
    public String tail(int lines) {
        try {
            if (!Files.exists(logFile)) {
                return "";
            }
            List<String> all = Files.readAllLines(logFile, StandardCharsets.ISO_8859_1);
            return String.join("\n", new ArrayList<>(all.subList(Math.max(0, all.size() - lines), all.size())));
        } catch (IOException e) {
            return "(cannot read " + logFile + ": " + e.getMessage() + ")";
        }
    }

    private void awaitExit(Process p, Duration timeout) {
        try {
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                p.destroyForcibly();
                if (!p.waitFor(20, TimeUnit.SECONDS)) {
                    throw new IllegalStateException(name + " (pid " + p.pid() + ") did not die");
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted waiting for " + name + " to exit", e);
        }
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
    }

    @Override
    public String toString() {
        return name + "@" + host.namespace();
    }
}
