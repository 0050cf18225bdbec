package dev.ferry.hypervisor.qemu;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferry.hypervisor.DeviceState;
import dev.ferry.hypervisor.DirtyLog;
import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.InstanceState;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.memory.RamFile;
import dev.ferry.hypervisor.qemu.dirty.PagemapDirtyLog;
import dev.ferry.hypervisor.qemu.qmp.QmpClient;
import dev.ferry.hypervisor.qemu.qmp.QmpEvent;
import dev.ferry.hypervisor.qemu.qmp.QmpException;
import dev.ferry.proto.vm.VmSpec;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One VM of the QEMU driver: a {@link QemuProcess}, its RAM file, and the QMP steps for pause,
 * resume and device state.
 *
 * <p>Device state moves through QEMU's own migration, over a unix socket the agent serves (source)
 * or connects to (destination), so the bytes can be tunnelled through the agents' stream. With
 * {@link DeviceState.Scope#DEVICES} both QEMUs run with {@code x-ignore-shared}: the RAM file is
 * shared memory and Ferry has already moved it; with {@link DeviceState.Scope#EVERYTHING} QEMU
 * moves RAM itself (the tunnelled qemu-native mode).
 */
final class QemuVm implements VmInstance {
    private static final Logger log = LoggerFactory.getLogger(QemuVm.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern HEARTBEAT = Pattern.compile("FERRY-GUEST hb=(\\d+)");
    private static final long UNLIMITED_BANDWIDTH = 100L << 30;
    private static final AtomicInteger SOCKETS = new AtomicInteger();

    private final VmSpec spec;
    private final QemuCommand command;
    private final RamFile ram;
    private final QemuDriver driver;
    private final List<Consumer<String>> exitListeners = new CopyOnWriteArrayList<>();
    private QemuProcess process;
    private InstanceState state;
    private volatile boolean exitExpected;

    QemuVm(VmSpec spec, QemuCommand command, RamFile ram, QemuDriver driver, boolean incoming) {
        this.spec = spec;
        this.command = command;
        this.ram = ram;
        this.driver = driver;
        this.state = incoming ? InstanceState.INCOMING : InstanceState.CREATED;
    }

    private Duration qmpTimeout() {
        return driver.settings().qmpTimeout();
    }

    /** Starts the QEMU process (paused and waiting for its state, for an incoming VM). */
    synchronized void launch() throws HypervisorException {
        if (process != null) {
            throw new HypervisorException("launch QEMU", "VM " + spec.getName() + " already has a QEMU process");
        }
        driver.checkFiles(spec, "launch QEMU");
        createTaps();
        try {
            attach(QemuProcess.start(command, driver.settings().startTimeout()));
        } catch (HypervisorException | RuntimeException e) {
            removeTaps();
            throw e;
        }
    }

    /**
     * The VM's cards' taps on their bridges, before QEMU opens them; all or none (a failure removes
     * those already made, and names its step).
     */
    private void createTaps() throws HypervisorException {
        java.util.List<QemuCommand.Nic> made = new java.util.ArrayList<>();
        try {
            for (int i = 0; i < command.nics().size(); i++) {
                QemuCommand.Nic n = command.nics().get(i);
                dev.ferry.hypervisor.net.Taps.create(n.tap(), spec.getNics(i).getBridge());
                made.add(n);
            }
        } catch (HypervisorException e) {
            made.forEach(n -> dev.ferry.hypervisor.net.Taps.removeQuietly(n.tap()));
            throw e;
        }
    }

    /** Removes the VM's taps once its QEMU is gone (the guest has left this host or stopped). */
    private void removeTaps() {
        for (QemuCommand.Nic n : command.nics()) {
            dev.ferry.hypervisor.net.Taps.removeQuietly(n.tap());
        }
    }

    /** An adopted QEMU (left by an earlier agent): running, paused, or frozen by its lease. */
    synchronized void adopted(QemuProcess p) throws HypervisorException {
        attach(p);
        if (p.qmp() != null) {
            try {
                state = "running".equals(status(p.qmp())) ? InstanceState.RUNNING : InstanceState.PAUSED;
            } catch (QmpException e) {
                state = InstanceState.RUNNING;
            }
        } else {
            state = InstanceState.RUNNING; // frozen by its lease: thaw() connects and reads it again
        }
    }

    private void attach(QemuProcess p) {
        process = p;
        p.onExit(exit -> {
            if (exit.requested() || exitExpected) {
                return;
            }
            synchronized (QemuVm.this) {
                if (state != InstanceState.CLOSED && state != InstanceState.STOPPED) {
                    state = InstanceState.FAILED;
                }
            }
            log.error("QEMU of VM {} ended unexpectedly: {}", spec.getName(), exit.reason());
            for (Consumer<String> l : exitListeners) {
                l.accept(exit.reason());
            }
        });
    }

    private QmpClient qmp() throws HypervisorException {
        QemuProcess p;
        synchronized (this) {
            p = process;
        }
        if (p == null) {
            throw new HypervisorException("QMP", "VM " + spec.getName() + " has no QEMU process");
        }
        if (p.qmp() == null) {
            throw new HypervisorException("QMP", "VM " + spec.getName() + " is frozen (its QEMU is stopped)");
        }
        return p.qmp();
    }

    @Override
    public void freeze() throws HypervisorException {
        long pid = pid();
        if (pid <= 0) {
            return;
        }
        try {
            // SIGSTOP needs nothing from QEMU: every thread stops, the guest runs no more code.
            dev.ferry.hypervisor.linux.Linux.kill(pid, dev.ferry.hypervisor.linux.Linux.SIGSTOP);
        } catch (dev.ferry.hypervisor.linux.LinuxException e) {
            throw new HypervisorException("freeze", "cannot stop QEMU " + pid + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void thaw() throws HypervisorException {
        QemuProcess p;
        synchronized (this) {
            p = process;
        }
        if (p == null) {
            return;
        }
        try {
            dev.ferry.hypervisor.linux.Linux.kill(p.pid(), dev.ferry.hypervisor.linux.Linux.SIGCONT);
        } catch (dev.ferry.hypervisor.linux.LinuxException e) {
            throw new HypervisorException("thaw", "cannot continue QEMU " + p.pid() + ": " + e.getMessage(), e);
        }
        if (p.qmp() == null) {
            // Adopted while stopped: its monitor answers now.
            p.connectAdopted(driver.settings().startTimeout());
            synchronized (this) {
                try {
                    if (state == InstanceState.RUNNING || state == InstanceState.PAUSED) {
                        state = "running".equals(status(p.qmp())) ? InstanceState.RUNNING : InstanceState.PAUSED;
                    }
                } catch (QmpException e) {
                    log.debug("query-status after thaw: {}", e.getMessage());
                }
            }
        }
    }

    @Override
    public boolean frozen() {
        QemuProcess p;
        synchronized (this) {
            p = process;
        }
        return p != null && p.runState() == 'T';
    }

    @Override
    public boolean survivesAgent() {
        return command.leaseFile() != null;
    }

    @Override
    public void detach() {
        if (!survivesAgent()) {
            close();
            return;
        }
        QemuProcess p;
        synchronized (this) {
            if (state == InstanceState.CLOSED) {
                return;
            }
            exitExpected = true;
            state = InstanceState.CLOSED;
            p = process;
        }
        if (p != null) {
            p.detach();
        }
        ram.detach();
    }

    @Override
    public synchronized java.util.Optional<dev.ferry.hypervisor.console.ConsoleHistory> console() {
        return process == null ? java.util.Optional.empty() : process.console();
    }

    @Override
    public void consoleInput(byte[] data) throws HypervisorException {
        QemuProcess p;
        synchronized (this) {
            p = process;
        }
        if (p == null) {
            throw new HypervisorException("console input", "VM " + spec.getName() + " has no QEMU process");
        }
        p.consoleInput(data);
    }

    private synchronized boolean processAlive() {
        return process != null && process.isAlive();
    }

    /** QEMU's pid, or -1 before launch (tests and diagnostics). */
    synchronized long pid() {
        return process == null ? -1 : process.pid();
    }

    @Override
    public VmSpec spec() {
        return spec;
    }

    @Override
    public synchronized InstanceState state() {
        return state;
    }

    @Override
    public synchronized void start() throws HypervisorException {
        if (state != InstanceState.CREATED) {
            throw new HypervisorException("start", "VM " + spec.getName() + " is " + state);
        }
        launch();
        state = InstanceState.RUNNING;
    }

    @Override
    public void pause() throws HypervisorException {
        synchronized (this) {
            if (state == InstanceState.PAUSED) {
                return;
            }
            if (state != InstanceState.RUNNING) {
                throw new HypervisorException("pause", "VM " + spec.getName() + " is " + state);
            }
        }
        QmpClient qmp = qmp();
        try {
            if (!"paused".equals(status(qmp))) {
                QmpClient.EventWaiter stopped = qmp.expect("STOP", null);
                qmp.execute("stop", qmpTimeout());
                stopped.await(qmpTimeout());
            }
        } catch (QmpException e) {
            if (e.kind() == QmpException.Kind.TIMEOUT) {
                // QEMU may still carry out a stop it did not answer: from here on assume it is paused,
                // so that resuming checks and, if needed, continues it.
                synchronized (this) {
                    state = InstanceState.PAUSED;
                }
            }
            throw e;
        }
        synchronized (this) {
            state = InstanceState.PAUSED;
        }
    }

    @Override
    public void resume() throws HypervisorException {
        synchronized (this) {
            if (state == InstanceState.RUNNING) {
                return;
            }
            if (state != InstanceState.PAUSED && state != InstanceState.INCOMING) {
                throw new HypervisorException("resume", "VM " + spec.getName() + " is " + state);
            }
        }
        boolean arrived;
        synchronized (this) {
            arrived = state == InstanceState.INCOMING;
        }
        QmpClient qmp = qmp();
        if (!"running".equals(status(qmp))) {
            QmpClient.EventWaiter resumed = qmp.expect("RESUME", null);
            qmp.execute("cont", qmpTimeout());
            resumed.await(qmpTimeout());
        }
        synchronized (this) {
            state = InstanceState.RUNNING;
        }
        if (arrived) {
            announce(qmp);
        }
    }

    /**
     * Tells the network the guest is here now (a migration's destination, just resumed): QEMU's
     * announce-self. Best effort: the guest runs either way, and its own traffic teaches the
     * bridges too, only later.
     */
    private void announce(QmpClient qmp) {
        QemuDriver.Announce a = driver.settings().announce();
        if (command.nics().isEmpty() || a.rounds() == 0) {
            return;
        }
        ObjectNode args = JSON.createObjectNode()
                .put("initial", a.initial().toMillis())
                .put("max", a.max().toMillis())
                .put("rounds", a.rounds())
                .put("step", a.step().toMillis());
        try {
            qmp.execute("announce-self", args, qmpTimeout());
            log.info("{}: announced on its network ({} rounds)", spec.getName(), a.rounds());
        } catch (QmpException e) {
            log.warn(
                    "{}: announce-self failed, the network learns its new place from its traffic: {}",
                    spec.getName(),
                    e.getMessage());
        }
    }

    /** Takes QEMU's word for whether the guest runs, after QEMU may have changed it by itself. */
    private void syncRunState(QmpClient qmp) {
        try {
            String status = status(qmp);
            synchronized (this) {
                if (state == InstanceState.RUNNING || state == InstanceState.PAUSED) {
                    state = status.equals("running") ? InstanceState.RUNNING : InstanceState.PAUSED;
                }
            }
        } catch (QmpException e) {
            log.debug("query-status after a failed save: {}", e.getMessage());
        }
    }

    private String status(QmpClient qmp) throws QmpException {
        return qmp.execute("query-status", qmpTimeout()).path("status").asText();
    }

    @Override
    public void stop() {
        QemuProcess p;
        synchronized (this) {
            if (state == InstanceState.CLOSED) {
                return;
            }
            exitExpected = true;
            p = process;
            state = InstanceState.STOPPED;
        }
        if (p != null) {
            p.close();
        }
        removeTaps();
    }

    @Override
    public GuestMemory memory() {
        return ram;
    }

    /**
     * A fresh dirty log for one migration, over the range the hook write-protected in this QEMU;
     * empty when the hook is not loaded or failed (the reason is logged).
     */
    @Override
    public Optional<DirtyLog> dirtyLog() {
        QemuProcess p;
        synchronized (this) {
            p = process;
        }
        if (p == null || !driver.capabilities().dirtyTracking()) {
            return Optional.empty();
        }
        try {
            Optional<HookStatus> status = p.hookStatus();
            if (status.isEmpty() || status.get().kind() != HookStatus.Kind.OK) {
                log.warn(
                        "VM {}: no dirty tracking: {}",
                        spec.getName(),
                        status.map(HookStatus::describe).orElse("the hook wrote no status"));
                return Optional.empty();
            }
            HookStatus s = status.get();
            return Optional.of(new PagemapDirtyLog(s.pid(), s.start(), Math.min(s.length(), ram.sizeBytes())));
        } catch (IOException e) {
            log.warn("VM {}: cannot read the hook status: {}", spec.getName(), e.getMessage());
            return Optional.empty();
        }
    }

    /**
     * QEMU's own migration loses writes under TCG before QEMU 9.0 ({@link NativeMigrationSafety});
     * judged from the running process (its accelerator and the version it reported), unless the
     * driver's settings allow it anyway (tests of the tunnel only).
     */
    @Override
    public Optional<String> hypervisorNativeMigrationHazard() {
        if (driver.settings().allowLossyNativeMigration()) {
            return Optional.empty();
        }
        QemuProcess p;
        synchronized (this) {
            p = process;
        }
        if (p == null) {
            return Optional.of("VM " + spec.getName() + " has no QEMU process");
        }
        return NativeMigrationSafety.hazard(p.accel().accel(), p.version());
    }

    @Override
    public Duration switchoverCostEstimate() {
        // Device state through QEMU's own migration: 16-35 ms measured for small pc guests under TCG.
        return Duration.ofMillis(40);
    }

    /**
     * The test guest's heartbeat counter, from the last heartbeat line this host's QEMU logged
     * (console.log, not the history: a migrated tail is not this copy's progress).
     */
    @Override
    public long heartbeat() {
        Path console = command.consoleLog();
        try (RandomAccessFile f = new RandomAccessFile(console.toFile(), "r")) {
            long len = f.length();
            int n = (int) Math.min(len, 4096);
            byte[] tail = new byte[n];
            f.seek(len - n);
            f.readFully(tail);
            Matcher m = HEARTBEAT.matcher(new String(tail, StandardCharsets.US_ASCII));
            long last = -1;
            while (m.find()) {
                last = Long.parseLong(m.group(1));
            }
            return last;
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
    }

    @Override
    public void onUnexpectedExit(Consumer<String> listener) {
        exitListeners.add(listener);
    }

    @Override
    public void close() {
        QemuProcess p;
        synchronized (this) {
            if (state == InstanceState.CLOSED) {
                return;
            }
            exitExpected = true;
            state = InstanceState.CLOSED;
            p = process;
        }
        if (p != null) {
            p.close();
        }
        removeTaps();
        ram.close();
    }

    @Override
    public DeviceState deviceState() {
        return new QemuDeviceState();
    }

    private static JsonNode capabilities(boolean ignoreShared) {
        ObjectNode args = JSON.createObjectNode();
        ArrayNode caps = args.putArray("capabilities");
        caps.addObject().put("capability", "x-ignore-shared").put("state", ignoreShared);
        caps.addObject().put("capability", "events").put("state", true);
        return args;
    }

    private static JsonNode uri(Path socket) {
        return JSON.createObjectNode().put("uri", "unix:" + socket);
    }

    private static boolean migrationEnded(QmpEvent e) {
        String s = e.data().path("status").asText();
        return s.equals("completed") || s.equals("failed") || s.equals("cancelled");
    }

    private Path socketPath(String kind) {
        return command.runDir().resolve(kind + "-" + SOCKETS.incrementAndGet() + ".sock");
    }

    /** The migration settings a prepareSave applied to this QEMU, so the save inside the pause skips them. */
    private record SaveSetUp(DeviceState.Scope scope, DeviceState.SaveLimits limits) {}

    private volatile SaveSetUp preparedSave;

    /** QEMU's migration stream, through a unix socket the agent serves or connects to. */
    private final class QemuDeviceState implements DeviceState {
        @Override
        public void prepareSave(Scope scope, SaveLimits limits) throws HypervisorException {
            preparedSave = null;
            setUpSave(qmp(), scope, limits);
            preparedSave = new SaveSetUp(scope, limits);
        }

        private void setUpSave(QmpClient qmp, Scope scope, SaveLimits limits) throws HypervisorException {
            qmp.execute("migrate-set-capabilities", capabilities(scope == Scope.DEVICES), qmpTimeout());
            ObjectNode params = JSON.createObjectNode()
                    .put("max-bandwidth", limits.maxBandwidth() > 0 ? limits.maxBandwidth() : UNLIMITED_BANDWIDTH)
                    .put("downtime-limit", Math.max(1, limits.downtimeLimit().toMillis()));
            qmp.execute("migrate-set-parameters", params, qmpTimeout());
        }

        @Override
        public long save(Scope scope, Sink sink, SaveLimits limits) throws HypervisorException {
            return saveStream(scope, sink, limits, null);
        }

        /**
         * QEMU's own migration stops the guest once its set-up and the RAM it still owns (ROMs) are
         * sent: started on the running guest, that set-up (tens of milliseconds under TCG) is not
         * part of the pause, which begins at QEMU's STOP event. QEMU emits that event while it holds
         * its big lock for the device save, so the event reaches us only after the state: its
         * timestamp, not its arrival, says when the guest stopped.
         */
        @Override
        public boolean pausesForSave() {
            return true;
        }

        @Override
        public long saveAndPause(Sink sink, SaveLimits limits, java.util.function.Consumer<java.time.Instant> pausedAt)
                throws HypervisorException {
            return saveStream(Scope.DEVICES, sink, limits, java.util.Objects.requireNonNull(pausedAt));
        }

        private long saveStream(
                Scope scope, Sink sink, SaveLimits limits, java.util.function.Consumer<java.time.Instant> paused)
                throws HypervisorException {
            String step = "save device state";
            QmpClient qmp = qmp();
            boolean mustRun = scope == Scope.EVERYTHING || paused != null;
            synchronized (QemuVm.this) {
                if (!mustRun && state != InstanceState.PAUSED) {
                    throw new HypervisorException(step, "VM " + spec.getName() + " must be paused, it is " + state);
                }
                if (mustRun && state != InstanceState.RUNNING) {
                    throw new HypervisorException(step, "VM " + spec.getName() + " must be running, it is " + state);
                }
            }
            long t0 = System.nanoTime();
            SaveSetUp prepared = preparedSave;
            preparedSave = null;
            if (!new SaveSetUp(scope, limits).equals(prepared)) {
                setUpSave(qmp, scope, limits);
            }
            Path socket = socketPath("devstate-out");
            long deadline = System.nanoTime() + limits.timeout().toNanos();
            QmpClient.EventWaiter stop = paused != null ? qmp.expect("STOP", null) : null;
            try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
                server.bind(UnixDomainSocketAddress.of(socket));
                QmpClient.EventWaiter ended = qmp.expect("MIGRATION", QemuVm::migrationEnded);
                long tMigrate = System.nanoTime();
                qmp.execute("migrate", uri(socket), qmpTimeout());
                long total = 0;
                long tAccepted = 0;
                long tStreamEnd = 0;
                // A QEMU that stops sending (frozen, wedged) must fail the step, not hang it: reads wait
                // at most the idle timeout, and a device-state-only save at most the whole timeout.
                Duration idle = qmpTimeout().multipliedBy(3);
                long acceptBy = Math.min(deadline, System.nanoTime() + idle.toNanos());
                try (SocketChannel in = accept(server, acceptBy);
                        Selector selector = Selector.open()) {
                    tAccepted = System.nanoTime();
                    in.configureBlocking(false);
                    in.register(selector, SelectionKey.OP_READ);
                    ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20);
                    while (true) {
                        buf.clear();
                        int n = in.read(buf);
                        if (n < 0) {
                            tStreamEnd = System.nanoTime();
                            break;
                        }
                        if (n == 0) {
                            selector.selectedKeys().clear();
                            if (selector.select(idle.toMillis()) == 0) {
                                throw new IOException("QEMU sent nothing for " + idle.toSeconds() + " s");
                            }
                            if (scope == Scope.DEVICES && System.nanoTime() > deadline) {
                                throw new IOException("device state took longer than "
                                        + limits.timeout().toSeconds() + " s");
                            }
                            continue;
                        }
                        buf.flip();
                        total += n;
                        sink.write(buf);
                    }
                } catch (IOException e) {
                    cancel(qmp);
                    throw new HypervisorException(step, "the device-state stream broke: " + e.getMessage(), e);
                }
                QmpEvent end = ended.await(remaining(deadline));
                String status = end.data().path("status").asText();
                if (!status.equals("completed")) {
                    throw new HypervisorException(step, "QEMU's migration " + status + ": " + migrationError(qmp));
                }
                if (paused != null) {
                    QmpEvent stopped = stop.await(qmpTimeout());
                    synchronized (QemuVm.this) {
                        if (state == InstanceState.RUNNING) {
                            state = InstanceState.PAUSED;
                        }
                    }
                    paused.accept(stopped.timestamp());
                }
                long tEnd = System.nanoTime();
                // Part of a live migration's downtime: where it went, for whoever tunes it.
                log.info(
                        "{}: {} of {} state saved in {} ms (set-up {} ms, QEMU connected +{} ms, stream +{} ms, "
                                + "completion event +{} ms)",
                        spec.getName(),
                        total,
                        scope,
                        ms(tEnd - t0),
                        ms(tMigrate - t0),
                        ms(tAccepted - tMigrate),
                        ms(tStreamEnd - tAccepted),
                        ms(tEnd - tStreamEnd));
                if (scope == Scope.EVERYTHING) {
                    // QEMU paused the guest itself for its final pass.
                    synchronized (QemuVm.this) {
                        if (state == InstanceState.RUNNING) {
                            state = InstanceState.PAUSED;
                        }
                    }
                }
                return total;
            } catch (IOException e) {
                throw new HypervisorException(step, "cannot serve " + socket + ": " + e.getMessage(), e);
            } catch (HypervisorException e) {
                if (paused != null) {
                    // QEMU resumes a guest it stopped for a migration that then failed: learn what it did.
                    syncRunState(qmp);
                }
                throw e;
            } finally {
                if (stop != null) {
                    stop.close();
                }
                deleteQuietly(socket);
            }
        }

        private SocketChannel accept(ServerSocketChannel server, long deadline)
                throws IOException, HypervisorException {
            // Woken by the connection itself (this is inside the pause), and every 50 ms to check on QEMU.
            server.configureBlocking(false);
            try (Selector selector = Selector.open()) {
                server.register(selector, SelectionKey.OP_ACCEPT);
                while (true) {
                    SocketChannel ch = server.accept();
                    if (ch != null) {
                        ch.configureBlocking(true);
                        return ch;
                    }
                    if (System.nanoTime() > deadline) {
                        throw new HypervisorException(
                                "save device state", "QEMU did not connect to " + server.getLocalAddress());
                    }
                    if (pid() > 0 && !processAlive()) {
                        throw new HypervisorException("save device state", "QEMU died before sending its state");
                    }
                    selector.selectedKeys().clear();
                    selector.select(50);
                }
            }
        }

        private void cancel(QmpClient qmp) {
            try {
                qmp.execute("migrate_cancel", qmpTimeout());
            } catch (QmpException e) {
                log.debug("migrate_cancel: {}", e.getMessage());
            }
        }

        @Override
        public Loader load(Scope scope) throws HypervisorException {
            String step = "load device state";
            synchronized (QemuVm.this) {
                if (state != InstanceState.INCOMING) {
                    throw new HypervisorException(
                            step, "VM " + spec.getName() + " is " + state + ", not waiting for its state");
                }
            }
            QmpClient qmp = qmp();
            long t0 = System.nanoTime();
            qmp.execute("migrate-set-capabilities", capabilities(scope == Scope.DEVICES), qmpTimeout());
            Path socket = socketPath("devstate-in");
            QmpClient.EventWaiter ended = qmp.expect("MIGRATION", QemuVm::migrationEnded);
            qmp.execute("migrate-incoming", uri(socket), qmpTimeout());
            long tIncoming = System.nanoTime();
            SocketChannel out = connect(socket, System.nanoTime() + qmpTimeout().toNanos());
            long tConnected = System.nanoTime();
            Selector selector;
            try {
                out.configureBlocking(false);
                selector = Selector.open();
                out.register(selector, SelectionKey.OP_WRITE);
            } catch (IOException e) {
                closeQuietly(out);
                throw new HypervisorException(step, "cannot set up the device-state stream: " + e.getMessage(), e);
            }
            Duration idle = qmpTimeout().multipliedBy(3);
            return new Loader() {
                @Override
                public void write(ByteBuffer chunk) throws IOException {
                    // A QEMU that stops reading must fail the load, not block the lane forever.
                    while (chunk.hasRemaining()) {
                        if (out.write(chunk) == 0) {
                            selector.selectedKeys().clear();
                            if (selector.select(idle.toMillis()) == 0) {
                                throw new IOException("QEMU read nothing for " + idle.toSeconds() + " s");
                            }
                        }
                    }
                }

                @Override
                public void finish(Duration timeout) throws HypervisorException {
                    long tFinish = System.nanoTime();
                    try {
                        out.shutdownOutput();
                    } catch (IOException e) {
                        throw new HypervisorException(step, "cannot end the device-state stream: " + e.getMessage(), e);
                    }
                    QmpEvent end = ended.await(timeout);
                    String status = end.data().path("status").asText();
                    if (!status.equals("completed")) {
                        throw new HypervisorException(step, "QEMU's incoming migration " + status);
                    }
                    long tEnd = System.nanoTime();
                    log.info(
                            "{}: {} state loaded (set-up {} ms, connected +{} ms, stream ended {} ms after set-up, "
                                    + "completion event +{} ms)",
                            spec.getName(),
                            scope,
                            ms(tIncoming - t0),
                            ms(tConnected - tIncoming),
                            ms(tFinish - tConnected),
                            ms(tEnd - tFinish));
                }

                @Override
                public void close() {
                    ended.close();
                    closeQuietly(selector);
                    closeQuietly(out);
                    deleteQuietly(socket);
                }
            };
        }

        private SocketChannel connect(Path socket, long deadline) throws HypervisorException {
            while (true) {
                try {
                    return SocketChannel.open(UnixDomainSocketAddress.of(socket));
                } catch (IOException e) {
                    // migrate-incoming returns before QEMU listens; the socket appears a moment later.
                    if (System.nanoTime() > deadline) {
                        throw new HypervisorException(
                                "load device state", "cannot connect to QEMU at " + socket + ": " + e.getMessage(), e);
                    }
                    sleep(2);
                }
            }
        }
    }

    private String migrationError(QmpClient qmp) {
        try {
            return qmp.execute("query-migrate", qmpTimeout()).path("error-desc").asText("no reason given");
        } catch (QmpException e) {
            return e.getMessage();
        }
    }

    private static long ms(long nanos) {
        return nanos / 1_000_000;
    }

    private static Duration remaining(long deadline) {
        return Duration.ofNanos(Math.max(1_000_000, deadline - System.nanoTime()));
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void closeQuietly(java.io.Closeable c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // QEMU sees EOF either way
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // the run directory goes with the VM
        }
    }
}
