package dev.ferry.hypervisor.qemu;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.hypervisor.linux.LinuxException;
import dev.ferry.hypervisor.qemu.QemuStartException.Step;
import dev.ferry.hypervisor.qemu.qmp.QmpClient;
import dev.ferry.hypervisor.qemu.qmp.QmpEvent;
import dev.ferry.hypervisor.qemu.qmp.QmpException;
import java.io.Closeable;
import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One running qemu-system process for one VM, from {@link QemuCommand}.
 *
 * <p>{@link #start} launches QEMU with its stdout and stderr going to {@code qemu.log} in the run
 * directory, waits for the QMP socket, connects a {@link QmpClient}, and records QEMU's version
 * and accelerator. Death is noticed twice, by the process exit and by EOF on QMP; either way the
 * {@link #onExit} listeners are told once, with how QEMU ended and its last stderr lines.
 * {@link #close()} always ends the process: {@code quit} over QMP, then SIGTERM, then SIGKILL.
 *
 * <p>Lifecycle: {@code RUNNING} once started, {@code EXITED} when QEMU ends by itself, {@code
 * CLOSED} after {@link #close()}. Run directory and files are private to this user (0700/0600).
 */
public final class QemuProcess implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(QemuProcess.class);
    private static final Set<PosixFilePermission> DIR_MODE = PosixFilePermissions.fromString("rwx------");
    private static final Set<PosixFilePermission> FILE_MODE = PosixFilePermissions.fromString("rw-------");
    /** How long {@code quit} and then SIGTERM each get before the next, harder, step. */
    static final Duration QUIT_GRACE = Duration.ofSeconds(3);

    static final Duration TERM_GRACE = Duration.ofSeconds(3);
    /** A QEMU whose monitor is gone but which lingers this long is killed: it can no longer be managed. */
    static final Duration ORPHAN_GRACE = Duration.ofSeconds(2);

    private static final int STDERR_TAIL_LINES = 12;
    private static final Duration QUERY_TIMEOUT = Duration.ofSeconds(5);

    /** Lifecycle of the process. */
    public enum State {
        STARTING,
        RUNNING,
        EXITED,
        CLOSED
    }

    private final QemuCommand command;
    private final Accel.Detection accel;
    private final Proc process;
    private final long logOffset;
    private final long launchedNanos;
    private final List<Consumer<QemuExit>> exitListeners = new CopyOnWriteArrayList<>();
    /** Open once the exit listeners have all been told; close() and awaitExit() wait for it. */
    private final java.util.concurrent.CountDownLatch told = new java.util.concurrent.CountDownLatch(1);

    private volatile Thread teller;

    private final Object lock = new Object();
    // Guarded by lock.
    private State state = State.STARTING;
    private boolean closeRequested;
    private boolean detached;
    private QemuExit exit;

    // Set once during start. Volatile: the exit handler may run on another thread meanwhile.
    private volatile QmpClient qmp;
    private QemuVersion version;
    private boolean kvmEnabled;
    private Duration startup;

    /**
     * The OS process: a child this agent launched (exit status known), or one a previous agent
     * launched and this one adopted (only its handle: no exit status, no pipes).
     */
    private interface Proc {
        long pid();

        boolean isAlive();

        boolean waitFor(long timeout, TimeUnit unit) throws InterruptedException;

        /** The exit value as Java reports it, or null when this process is not our child. */
        Integer exitValue();

        java.util.concurrent.CompletableFuture<?> onExit();

        void destroy();

        void destroyForcibly();

        java.util.stream.Stream<ProcessHandle> descendants();

        static Proc of(Process p) {
            return new Proc() {
                @Override
                public long pid() {
                    return p.pid();
                }

                @Override
                public boolean isAlive() {
                    return p.isAlive();
                }

                @Override
                public boolean waitFor(long timeout, TimeUnit unit) throws InterruptedException {
                    return p.waitFor(timeout, unit);
                }

                @Override
                public Integer exitValue() {
                    return p.exitValue();
                }

                @Override
                public java.util.concurrent.CompletableFuture<?> onExit() {
                    return p.onExit();
                }

                @Override
                public void destroy() {
                    p.destroy();
                }

                @Override
                public void destroyForcibly() {
                    p.destroyForcibly();
                }

                @Override
                public java.util.stream.Stream<ProcessHandle> descendants() {
                    return p.descendants();
                }
            };
        }

        static Proc of(ProcessHandle h) {
            return new Proc() {
                @Override
                public long pid() {
                    return h.pid();
                }

                @Override
                public boolean isAlive() {
                    return h.isAlive();
                }

                @Override
                public boolean waitFor(long timeout, TimeUnit unit) throws InterruptedException {
                    try {
                        h.onExit().get(timeout, unit);
                        return true;
                    } catch (java.util.concurrent.TimeoutException e) {
                        return false;
                    } catch (java.util.concurrent.ExecutionException e) {
                        return !h.isAlive();
                    }
                }

                @Override
                public Integer exitValue() {
                    return null;
                }

                @Override
                public java.util.concurrent.CompletableFuture<?> onExit() {
                    return h.onExit();
                }

                @Override
                public void destroy() {
                    h.destroy();
                }

                @Override
                public void destroyForcibly() {
                    h.destroyForcibly();
                }

                @Override
                public java.util.stream.Stream<ProcessHandle> descendants() {
                    return h.descendants();
                }
            };
        }
    }

    private volatile dev.ferry.hypervisor.console.ConsoleHistory console;
    private ConsolePump consolePump;

    private QemuProcess(QemuCommand command, Accel.Detection accel, Proc process, long logOffset, long launchedNanos) {
        this.command = command;
        this.accel = accel;
        this.process = process;
        this.logOffset = logOffset;
        this.launchedNanos = launchedNanos;
    }

    /**
     * Launches QEMU and returns once QMP is ready (capabilities negotiated, version queried).
     * Whatever fails on the way, no process is left behind.
     */
    public static QemuProcess start(QemuCommand command, Duration timeout) throws QemuStartException {
        long deadline = System.nanoTime() + timeout.toNanos();
        long logOffset = prepareRunDir(command);
        Accel.Detection accel = command.accel() == Accel.AUTO
                ? Accel.detect()
                : new Accel.Detection(command.accel(), "asked for " + command.accel());
        QemuCommand resolved = command.withAccel(accel.accel());

        if (!ProcessLauncher.isExecutable(resolved.binary())) {
            // Checked here because under setpriv a missing binary would only show as an early exit.
            throw new QemuStartException(
                    Step.LAUNCH,
                    "cannot run " + resolved.binary() + ": no such executable"
                            + (resolved.binary().isAbsolute() ? "" : " on PATH"),
                    null);
        }
        // A guest with a lease outlives its agent on purpose: the lease stops it if nobody renews it,
        // and a restarted agent adopts it. Without a lease (standalone), QEMU dies with the agent.
        ProcessBuilder pb = new ProcessBuilder(
                resolved.leaseFile() != null
                        ? resolved.argv()
                        : ProcessLauncher.withParentDeathSignal(resolved.argv()));
        resolved.environmentToRemove().forEach(pb.environment()::remove);
        pb.environment().putAll(resolved.environment());
        pb.directory(resolved.runDir().toFile());
        pb.redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        pb.redirectErrorStream(true);
        pb.redirectOutput(ProcessBuilder.Redirect.appendTo(resolved.qemuLog().toFile()));
        long launched = System.nanoTime();
        Process process;
        try {
            process = ProcessLauncher.start(pb);
        } catch (IOException e) {
            throw new QemuStartException(Step.LAUNCH, "cannot run " + resolved.binary() + ": " + e.getMessage(), e);
        }
        QemuProcess qp = new QemuProcess(resolved, accel, Proc.of(process), logOffset, launched);
        log.info(
                "QEMU {} launched: pid {}, accel {} ({})",
                resolved.name(),
                process.pid(),
                accel.accel(),
                accel.reason());
        log.debug("QEMU {} command line: {}", resolved.name(), String.join(" ", resolved.argv()));
        process.onExit().thenRun(qp::processEnded);
        try {
            qp.writePidFile();
            qp.connect(deadline);
            qp.openConsole();
            return qp;
        } catch (QemuStartException | RuntimeException e) {
            qp.close();
            throw e;
        }
    }

    /**
     * Adopts the QEMU that a previous agent process started for {@code command} and left running
     * (an agent restarted for an upgrade): found by the pid file in its run directory, checked by
     * pid and start time (a reused pid is not it), reconnected over its QMP socket. Empty when no
     * such process runs (it ended, or never started); then nothing was changed.
     */
    public static Optional<QemuProcess> adopt(QemuCommand command, Duration timeout) throws QemuStartException {
        Optional<long[]> recorded = readPidFile(command.pidFile());
        if (recorded.isEmpty()) {
            return Optional.empty();
        }
        long pid = recorded.get()[0];
        Optional<ProcessHandle> handle = ProcessHandle.of(pid);
        if (handle.isEmpty() || !handle.get().isAlive() || startTime(pid) != recorded.get()[1]) {
            return Optional.empty();
        }
        Accel.Detection accel = new Accel.Detection(
                command.accel() == Accel.AUTO ? Accel.detect().accel() : command.accel(), "adopted");
        long logOffset;
        try {
            logOffset = Files.size(command.qemuLog());
        } catch (IOException e) {
            logOffset = 0;
        }
        QemuCommand resolved = command.withAccel(accel.accel());
        QemuProcess qp = new QemuProcess(resolved, accel, Proc.of(handle.get()), logOffset, System.nanoTime());
        handle.get().onExit().thenRun(qp::processEnded);
        // A QEMU stopped by its lapsed lease answers nothing until thawed, and thawing it is the
        // caller's decision (only once it owns the VM again): then it calls connectAdopted.
        if (qp.runState() != 'T') {
            qp.connectAdopted(timeout);
        }
        log.info(
                "QEMU {} adopted: pid {} left by an earlier agent ({})",
                command.name(),
                pid,
                qp.qmp == null ? "stopped by its lease" : "running");
        return Optional.of(qp);
    }

    /** Connects QMP to an adopted QEMU, if not yet connected (it was stopped when adopted). */
    public void connectAdopted(Duration timeout) throws QemuStartException {
        openConsole();
        if (qmp == null) {
            connect(System.nanoTime() + timeout.toNanos());
        }
    }

    private void writePidFile() throws QemuStartException {
        long start = startTime(process.pid());
        try {
            Path tmp = command.pidFile().resolveSibling("qemu.pid.tmp");
            Files.writeString(tmp, process.pid() + " " + start + "\n", StandardCharsets.US_ASCII);
            Files.setPosixFilePermissions(tmp, FILE_MODE);
            Files.move(
                    tmp,
                    command.pidFile(),
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                    java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new QemuStartException(Step.LAUNCH, "cannot write " + command.pidFile() + ": " + e, e);
        }
    }

    /**
     * The process a pid file names, if it still runs (same pid and start time): for tools that clean
     * up guests an agent left behind.
     */
    public static Optional<ProcessHandle> recorded(Path pidFile) {
        return readPidFile(pidFile)
                .filter(r -> startTime(r[0]) == r[1])
                .flatMap(r -> ProcessHandle.of(r[0]))
                .filter(ProcessHandle::isAlive);
    }

    /**
     * Every live QEMU whose command line names a path under {@code dir}: for the leftovers a pid file
     * cannot find (an agent killed between QEMU's launch and writing its pid file).
     */
    public static List<ProcessHandle> runningUnder(Path dir) {
        String needle = dir.toAbsolutePath().normalize().toString();
        List<ProcessHandle> found = new ArrayList<>();
        ProcessHandle.allProcesses().forEach(p -> {
            try {
                String cmd = new String(
                        Files.readAllBytes(Path.of("/proc", Long.toString(p.pid()), "cmdline")),
                        StandardCharsets.UTF_8);
                if (cmd.contains("qemu-system") && cmd.contains(needle) && p.isAlive()) {
                    found.add(p);
                }
            } catch (IOException | RuntimeException e) {
                // gone meanwhile, or not ours to read
            }
        });
        return found;
    }

    /** (pid, start time) from a pid file, or empty if there is none or it is unreadable. */
    static Optional<long[]> readPidFile(Path file) {
        try {
            String[] f =
                    Files.readString(file, StandardCharsets.US_ASCII).trim().split(" ");
            return Optional.of(new long[] {Long.parseLong(f[0]), Long.parseLong(f[1])});
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
    }

    /** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or -1 if the process is gone. */
    static long startTime(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"), StandardCharsets.US_ASCII);
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return Long.parseLong(f[19]);
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** The process's state letter from /proc/PID/stat ('T': stopped by a signal), or '?' if it is gone. */
    public char runState() {
        try {
            String stat =
                    Files.readString(Path.of("/proc", Long.toString(process.pid()), "stat"), StandardCharsets.US_ASCII);
            return stat.charAt(stat.lastIndexOf(')') + 2);
        } catch (IOException | RuntimeException e) {
            return '?';
        }
    }

    private static long prepareRunDir(QemuCommand c) throws QemuStartException {
        Path dir = c.runDir();
        try {
            try {
                Files.createDirectories(dir.getParent());
                Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(DIR_MODE));
            } catch (FileAlreadyExistsException e) {
                if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
                    throw new QemuStartException(Step.PREPARE_RUN_DIR, dir + " exists and is not a directory", null);
                }
            }
            // Sockets and logs are reachable only through this directory: it alone keeps them private.
            Files.setPosixFilePermissions(dir, DIR_MODE);
            // A socket left by a previous QEMU would be mistaken for this one's; an old hook status
            // would be mistaken for this run's registration (and blocks the hook's "loaded" line).
            Files.deleteIfExists(c.qmpSocket());
            Files.deleteIfExists(c.consoleSocket());
            Files.deleteIfExists(c.hookStatusFile());
            for (Path f : List.of(c.consoleLog(), c.qemuLog())) {
                if (!Files.exists(f)) {
                    Files.createFile(f, PosixFilePermissions.asFileAttribute(FILE_MODE));
                }
                Files.setPosixFilePermissions(f, FILE_MODE);
            }
            // qemu.log is appended to across restarts; this run's lines start here.
            return Files.size(c.qemuLog());
        } catch (IOException e) {
            throw new QemuStartException(Step.PREPARE_RUN_DIR, "cannot prepare " + dir + ": " + e, e);
        }
    }

    private void connect(long deadline) throws QemuStartException {
        Path socket = command.qmpSocket();
        while (!Files.exists(socket)) {
            if (!process.isAlive()) {
                throw new QemuStartException(Step.WAIT_FOR_QMP_SOCKET, diedDuringStart(), null);
            }
            if (System.nanoTime() > deadline) {
                throw new QemuStartException(
                        Step.WAIT_FOR_QMP_SOCKET,
                        "no QMP socket at " + socket + " after " + elapsedMillis() + " ms" + tailSuffix(),
                        null);
            }
            sleepQuietly(5);
        }
        try {
            Files.setPosixFilePermissions(socket, FILE_MODE);
        } catch (IOException e) {
            log.debug("cannot chmod {}: {}", socket, e.getMessage());
        }
        QmpClient client;
        while (true) {
            try {
                client = QmpClient.connect(socket, command.name(), remaining(deadline));
                break;
            } catch (QmpException e) {
                // The socket file appears at bind(), a moment before listen(): a refused connect is retried.
                boolean retry = e.kind() == QmpException.Kind.IO && process.isAlive() && System.nanoTime() < deadline;
                if (!retry) {
                    String why = process.isAlive() ? e.getMessage() : diedDuringStart();
                    throw new QemuStartException(Step.CONNECT_QMP, why, e);
                }
                sleepQuietly(5);
            }
        }
        qmp = client;
        client.onDeath(this::qmpDied);
        try {
            version = QemuVersion.fromQueryVersion(client.execute("query-version", QUERY_TIMEOUT));
            JsonNode kvm = client.execute("query-kvm", QUERY_TIMEOUT);
            kvmEnabled = kvm.path("enabled").asBoolean(false);
        } catch (QmpException e) {
            throw new QemuStartException(Step.QUERY, e.getMessage() + tailSuffix(), e);
        }
        if ((accel.accel() == Accel.KVM) != kvmEnabled) {
            throw new QemuStartException(
                    Step.CHECK_ACCEL,
                    "asked for " + accel.accel() + " but QEMU reports KVM " + (kvmEnabled ? "enabled" : "disabled"),
                    null);
        }
        startup = Duration.ofNanos(System.nanoTime() - launchedNanos);
        synchronized (lock) {
            if (state == State.STARTING) {
                state = State.RUNNING;
            }
        }
        log.info(
                "QEMU {} ready: pid {}, QEMU {}, {}, QMP ready after {} ms",
                command.name(),
                process.pid(),
                version,
                kvmEnabled ? "KVM" : "TCG",
                startup.toMillis());
    }

    private String diedDuringStart() {
        try {
            process.waitFor(1, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        Integer value = process.isAlive() ? null : process.exitValue();
        String how = process.isAlive()
                ? "QEMU stopped answering"
                : QemuExit.of(false, value == null ? 0 : value, null, List.of()).reason();
        return how + " during start-up" + tailSuffix();
    }

    private String tailSuffix() {
        List<String> tail = stderrTail();
        return tail.isEmpty() ? "" : "; QEMU said: " + String.join(" | ", tail);
    }

    public QemuCommand command() {
        return command;
    }

    public long pid() {
        return process.pid();
    }

    /** The QMP connection; valid while the process runs. */
    public QmpClient qmp() {
        return qmp;
    }

    /** The accelerator in use and why it was chosen. */
    public Accel.Detection accel() {
        return accel;
    }

    public QemuVersion version() {
        return version;
    }

    /** Launch to QMP ready (greeting, capabilities, version query). */
    public Duration startupTime() {
        return startup;
    }

    public State state() {
        synchronized (lock) {
            return state;
        }
    }

    public boolean isAlive() {
        return process.isAlive();
    }

    /** How QEMU ended, once it has. */
    public Optional<QemuExit> exit() {
        synchronized (lock) {
            return Optional.ofNullable(exit);
        }
    }

    /**
     * Adds a listener told once when QEMU ends, however it ends (also after {@link #close()}, with
     * {@link QemuExit#requested()} true). Added after the end, it runs at once.
     */
    public void onExit(Consumer<QemuExit> listener) {
        QemuExit e;
        synchronized (lock) {
            e = exit;
            if (e == null) {
                exitListeners.add(listener);
                return;
            }
        }
        listener.accept(e);
    }

    /** Waits until QEMU has ended; false on timeout. */
    public boolean awaitExit(Duration timeout) throws InterruptedException {
        if (!process.waitFor(timeout.toNanos(), TimeUnit.NANOSECONDS)) {
            return false;
        }
        processEnded();
        return true;
    }

    /** The hook's status file as it is now, or empty when the hook has written nothing (yet). */
    public Optional<HookStatus> hookStatus() throws IOException {
        try {
            String text = Files.readString(command.hookStatusFile(), StandardCharsets.UTF_8);
            return Optional.of(HookStatus.parse(text));
        } catch (NoSuchFileException e) {
            return Optional.empty();
        }
    }

    /**
     * Waits for the hook to report the RAM mapping ({@code ok}) or its failure ({@code error}).
     * QEMU maps guest RAM before its monitor starts, so once QMP is ready this returns at once.
     */
    public HookStatus awaitHookStatus(Duration timeout) throws IOException {
        if (command.hookLibrary() == null) {
            throw new IllegalStateException("QEMU " + command.name() + " was started without the hook library");
        }
        long deadline = System.nanoTime() + timeout.toNanos();
        Optional<HookStatus> s = Optional.empty();
        while (System.nanoTime() < deadline) {
            s = hookStatus();
            if (s.isPresent() && s.get().kind() != HookStatus.Kind.LOADED) {
                return s.get();
            }
            sleepQuietly(5);
        }
        throw new IOException("the hook reported no RAM mapping within " + timeout.toMillis() + " ms: "
                + s.map(HookStatus::describe)
                        .orElse("no status file at " + command.hookStatusFile()
                                + " (the library did not load? check LD_PRELOAD and " + command.qemuLog() + ")"));
    }

    /** The last lines QEMU wrote to stdout/stderr in this run. */
    public List<String> stderrTail() {
        return tail(command.qemuLog(), logOffset, STDERR_TAIL_LINES);
    }

    /**
     * Opens the guest's console history in the run directory (QEMU writes it; {@link ConsolePump}
     * carries input). A history that cannot be opened does not stop the guest: it runs without
     * one, and the log says so.
     */
    private synchronized void openConsole() {
        if (console != null) {
            return;
        }
        try {
            console = dev.ferry.hypervisor.console.ConsoleHistory.open(command.runDir());
        } catch (IOException e) {
            log.warn("QEMU {} runs without a console history: {}", command.name(), e.getMessage());
        }
    }

    private synchronized void closeConsole() {
        if (consolePump != null) {
            consolePump.close();
            consolePump = null;
        }
        if (console != null) {
            console.close();
        }
    }

    /** The guest's console history (COM1's output), once QEMU is connected. */
    public Optional<dev.ferry.hypervisor.console.ConsoleHistory> console() {
        return Optional.ofNullable(console);
    }

    /** Queues {@code data} as input on the guest's COM1, connecting to its socket if not connected. */
    public void consoleInput(byte[] data) throws dev.ferry.hypervisor.HypervisorException {
        ConsolePump p;
        synchronized (this) {
            if (consolePump == null || !consolePump.isOpen()) {
                if (consolePump != null) {
                    consolePump.close();
                }
                consolePump = ConsolePump.connect(command.name(), command.consoleSocket(), 2000);
            }
            p = consolePump;
        }
        p.write(data);
    }

    /**
     * Lets go of QEMU without ending it (the agent exits; a later agent adopts it): the QMP
     * connection closes, the process and its files stay. Exit listeners are not told.
     */
    public void detach() {
        synchronized (lock) {
            if (state == State.CLOSED) {
                return;
            }
            state = State.CLOSED;
            detached = true;
            exitListeners.clear();
        }
        if (qmp != null) {
            qmp.close();
        }
        closeConsole();
        log.info("QEMU {} (pid {}) left running for the next agent", command.name(), pid());
    }

    private void qmpDied(String reason) {
        synchronized (lock) {
            if (closeRequested || detached) {
                return;
            }
        }
        // Usually QEMU is exiting and the process exit follows within milliseconds. A QEMU that
        // lingers without its monitor can no longer be paused or stopped by Ferry: end it.
        Thread.ofPlatform().daemon().name("qemu-orphan-" + command.name()).start(() -> {
            try {
                if (!process.waitFor(ORPHAN_GRACE.toMillis(), TimeUnit.MILLISECONDS)) {
                    log.warn(
                            "QEMU {} (pid {}) lost its QMP connection but still runs; killing it",
                            command.name(),
                            pid());
                    process.destroyForcibly();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
    }

    /**
     * Runs once the process has been reaped (from Process.onExit, close or awaitExit): builds the
     * exit report and tells the listeners. Whoever comes second waits until they have been told, so
     * that close() never returns before its listeners ran (unless a listener itself calls close()).
     */
    private void processEnded() {
        if (process.isAlive()) {
            return;
        }
        synchronized (lock) {
            if (detached) {
                return;
            }
        }
        QmpEvent shutdown = null;
        String qmpEnd = null;
        if (qmp != null) {
            // QEMU's last words (SHUTDOWN and its reason) precede the EOF; let the reader take them in.
            qmp.awaitEnd(Duration.ofMillis(500));
            for (QmpEvent ev : qmp.recentEvents()) {
                if (ev.name().equals("SHUTDOWN")) {
                    shutdown = ev;
                }
            }
            qmpEnd = qmp.deathReason();
        }
        List<Consumer<QemuExit>> toTell = null;
        QemuExit e = null;
        synchronized (lock) {
            if (exit == null) {
                StringBuilder context = new StringBuilder();
                if (closeRequested) {
                    context.append("stopped by Ferry");
                }
                if (shutdown != null) {
                    append(context, "SHUTDOWN event " + shutdown.data());
                }
                if (qmpEnd != null && !closeRequested) {
                    append(context, qmpEnd);
                }
                Integer value = process.exitValue();
                if (value == null) {
                    // Not our child: the kernel tells only the parent how it ended.
                    exit = new QemuExit(
                            closeRequested,
                            -1,
                            0,
                            "QEMU ended (adopted from an earlier agent: exit status unknown)"
                                    + (context.isEmpty() ? "" : "; " + context),
                            stderrTail());
                } else {
                    exit = QemuExit.of(closeRequested, value, context.toString(), stderrTail());
                }
                e = exit;
                if (state != State.CLOSED) {
                    state = State.EXITED;
                }
                toTell = List.copyOf(exitListeners);
                exitListeners.clear();
                teller = Thread.currentThread();
            }
        }
        if (e == null) {
            // Someone else is telling; wait outside the lock, as listeners may call back into this object.
            awaitTold();
            return;
        }
        try {
            tell(e, toTell);
        } finally {
            told.countDown();
        }
    }

    private void awaitTold() {
        if (Thread.currentThread() == teller) {
            return;
        }
        try {
            if (!told.await(10, TimeUnit.SECONDS)) {
                log.warn("QEMU {}: exit listeners still running after 10 s", command.name());
            }
        } catch (InterruptedException ex) {
            Thread.currentThread().interrupt();
        }
    }

    private void tell(QemuExit e, List<Consumer<QemuExit>> toTell) {
        if (e.requested()) {
            log.info("QEMU {} (pid {}) ended: {}", command.name(), pid(), e.reason());
        } else {
            log.warn("QEMU {} (pid {}) ended unexpectedly: {}", command.name(), pid(), e.reason());
        }
        for (Consumer<QemuExit> l : toTell) {
            try {
                l.accept(e);
            } catch (RuntimeException ex) {
                log.warn("QEMU {}: exit listener failed", command.name(), ex);
            }
        }
    }

    private static void append(StringBuilder b, String s) {
        if (!b.isEmpty()) {
            b.append("; ");
        }
        b.append(s);
    }

    /**
     * Ends QEMU for sure and waits for it: {@code quit} over QMP when it answers, SIGTERM after
     * {@link #QUIT_GRACE}, SIGKILL after {@link #TERM_GRACE}. Exit listeners have run when this
     * returns. The run directory stays (its logs explain what happened); the socket is removed.
     */
    @Override
    public void close() {
        synchronized (lock) {
            if (state == State.CLOSED) {
                return;
            }
            state = State.CLOSED;
            closeRequested = true;
        }
        List<ProcessHandle> children = process.descendants().toList();
        try {
            if (process.isAlive() && runState() == 'T') {
                // Stopped (fenced, or its lease lapsed): continuing it to let it quit would run guest
                // code it may no longer run. SIGKILL ends a stopped process as it is.
                log.info("QEMU {} (pid {}) is stopped; killing it as it is", command.name(), pid());
                process.destroyForcibly();
                waitFor(Duration.ofSeconds(10));
            }
            if (process.isAlive() && qmp != null && qmp.state() == QmpClient.State.READY) {
                boolean answered = true;
                try {
                    qmp.execute("quit", Duration.ofSeconds(1));
                } catch (QmpException e) {
                    // DISCONNECTED can be the answer to quit (QEMU gone before its reply); TIMEOUT means it
                    // is wedged or frozen, and waiting longer for it to quit is pointless.
                    answered = e.kind() != QmpException.Kind.TIMEOUT;
                    log.debug("QEMU {}: quit: {}", command.name(), e.getMessage());
                }
                if (answered) {
                    waitFor(QUIT_GRACE);
                }
            }
            if (process.isAlive()) {
                log.info("QEMU {} (pid {}) still running; sending SIGTERM", command.name(), pid());
                process.destroy();
                try {
                    // A stopped process (SIGSTOP, a debugger) would hold SIGTERM pending forever.
                    Linux.kill(pid(), Linux.SIGCONT);
                } catch (LinuxException | IllegalArgumentException e) {
                    log.debug("SIGCONT to {}: {}", pid(), e.getMessage());
                }
                waitFor(TERM_GRACE);
            }
            if (process.isAlive()) {
                log.warn("QEMU {} (pid {}) ignored SIGTERM; sending SIGKILL", command.name(), pid());
                process.destroyForcibly();
                waitFor(Duration.ofSeconds(10));
            }
            for (ProcessHandle child : children) {
                child.destroyForcibly();
            }
            if (process.isAlive()) {
                log.error("QEMU {} (pid {}) survived SIGKILL (stuck in the kernel?)", command.name(), pid());
            }
        } finally {
            processEnded();
            if (qmp != null) {
                qmp.close();
            }
            closeConsole();
            try {
                Files.deleteIfExists(command.consoleSocket());
                Files.deleteIfExists(command.qmpSocket());
            } catch (IOException e) {
                log.debug("cannot remove {}: {}", command.qmpSocket(), e.getMessage());
            }
        }
    }

    private void waitFor(Duration d) {
        try {
            process.waitFor(d.toMillis(), TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            // Keep going: close must end the process even for an interrupted caller.
            Thread.currentThread().interrupt();
            process.destroyForcibly();
        }
    }

    private long elapsedMillis() {
        return (System.nanoTime() - launchedNanos) / 1_000_000;
    }

    /** The last {@code lines} lines of {@code file} from {@code offset} on (at most the last 16 KiB). */
    static List<String> tail(Path file, long offset, int lines) {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "r")) {
            long end = f.length();
            long from = Math.max(offset, end - 16 * 1024);
            if (end <= from) {
                return List.of();
            }
            byte[] buf = new byte[(int) (end - from)];
            f.seek(from);
            f.readFully(buf);
            List<String> all = new ArrayList<>(Arrays.asList(new String(buf, StandardCharsets.UTF_8).split("\n")));
            all.removeIf(String::isBlank);
            return List.copyOf(all.subList(Math.max(0, all.size() - lines), all.size()));
        } catch (IOException e) {
            return List.of();
        }
    }

    private static Duration remaining(long deadline) {
        return Duration.ofNanos(Math.max(0, deadline - System.nanoTime()));
    }

    private static void sleepQuietly(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public String toString() {
        return "QemuProcess[" + command.name() + " pid " + process.pid() + " " + state() + "]";
    }
}
