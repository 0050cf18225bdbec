package dev.ferry.hypervisor.sim;

import dev.ferry.hypervisor.DeviceState;
import dev.ferry.hypervisor.DirtyLog;
import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.InstanceState;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.memory.RamFile;
import dev.ferry.proto.vm.VmSpec;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Optional;
import java.util.function.Consumer;

/** A VM of the sim driver: a RAM file on tmpfs and a {@link SimGuest} writing into it. */
public final class SimVm implements VmInstance {
    private final VmSpec spec;
    private final RamFile ram;
    private final SimDirtyLog dirtyLog;
    private final SimGuest guest;
    private InstanceState state;

    private final dev.ferry.hypervisor.lease.LeaseFile lease;
    private final dev.ferry.hypervisor.console.ConsoleHistory console;

    /** The file the guest prints its heartbeat lines to, in the VM's run directory. */
    public static final String CONSOLE = "console.log";

    SimVm(VmSpec spec, RamFile ram, InstanceState initial, java.nio.file.Path leaseFile, java.nio.file.Path runDir)
            throws HypervisorException {
        this.spec = spec;
        this.ram = ram;
        this.dirtyLog = new SimDirtyLog(ram.pageCount());
        this.guest = new SimGuest(spec.getName(), ram.segment(), ram.pageSize(), spec.getWorkload(), dirtyLog);
        this.state = initial;
        try {
            this.lease = leaseFile == null ? null : dev.ferry.hypervisor.lease.LeaseFile.open(leaseFile);
        } catch (java.io.IOException e) {
            ram.close();
            throw new HypervisorException(
                    "open lease", "cannot open the lease " + leaseFile + ": " + e.getMessage(), e);
        }
        guest.lease(lease);
        if (runDir != null) {
            try {
                this.console = dev.ferry.hypervisor.console.ConsoleHistory.open(runDir);
            } catch (java.io.IOException e) {
                if (lease != null) {
                    lease.close();
                }
                ram.close();
                throw new HypervisorException(
                        "open console", "cannot open the console history in " + runDir + ": " + e.getMessage(), e);
            }
            guest.console(console);
        } else {
            this.console = null;
        }
    }

    @Override
    public java.util.Optional<dev.ferry.hypervisor.console.ConsoleHistory> console() {
        return java.util.Optional.ofNullable(console);
    }

    /** The sim guest echoes its console input, as a shell on a terminal would. */
    @Override
    public void consoleInput(byte[] data) throws HypervisorException {
        if (console == null) {
            throw new HypervisorException("console input", "VM " + spec.getName() + " has no console");
        }
        guest.print(new String(data, java.nio.charset.StandardCharsets.ISO_8859_1));
    }

    @Override
    public void freeze() {
        guest.freeze();
    }

    @Override
    public void thaw() {
        guest.thaw();
    }

    @Override
    public boolean frozen() {
        return guest.frozen();
    }

    void fill() throws HypervisorException {
        try {
            guest.fill(ram);
        } catch (java.io.IOException e) {
            throw new HypervisorException("fill guest memory", e.getMessage(), e);
        }
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
        require("start", InstanceState.CREATED, InstanceState.STOPPED);
        guest.run();
        state = InstanceState.RUNNING;
    }

    @Override
    public synchronized void pause() throws HypervisorException {
        if (state == InstanceState.PAUSED) {
            return;
        }
        require("pause", InstanceState.RUNNING);
        guest.pause();
        state = InstanceState.PAUSED;
    }

    @Override
    public synchronized void resume() throws HypervisorException {
        if (state == InstanceState.RUNNING) {
            return;
        }
        require("resume", InstanceState.PAUSED, InstanceState.INCOMING);
        guest.run();
        state = InstanceState.RUNNING;
    }

    @Override
    public synchronized void stop() {
        if (state == InstanceState.CLOSED) {
            return;
        }
        guest.shutdown();
        dirtyLog.stop();
        state = InstanceState.STOPPED;
    }

    @Override
    public GuestMemory memory() {
        return ram;
    }

    @Override
    public Optional<DirtyLog> dirtyLog() {
        return Optional.of(dirtyLog);
    }

    @Override
    public long heartbeat() {
        return guest.heartbeat();
    }

    /** Pages the guest found holding something other than what it last wrote (0 unless memory was lost). */
    public long staleReads() {
        return guest.staleReads();
    }

    public long pageWrites() {
        return guest.writes();
    }

    /** Checks the RAM image from outside against the guest's own generation table. */
    public SimGuest.Verification verifyMemory() {
        return SimGuest.verify(ram.segment(), ram.pageSize());
    }

    @Override
    public DeviceState deviceState() {
        return new DeviceState() {
            @Override
            public long save(Scope scope, Sink sink, SaveLimits limits) throws HypervisorException {
                requireDevicesScope(scope);
                synchronized (SimVm.this) {
                    require("save device state", InstanceState.PAUSED);
                }
                byte[] bytes = guest.saveState();
                try {
                    sink.write(ByteBuffer.wrap(bytes));
                } catch (java.io.IOException e) {
                    throw new HypervisorException("save device state", e.getMessage(), e);
                }
                return bytes.length;
            }

            @Override
            public Loader load(Scope scope) throws HypervisorException {
                requireDevicesScope(scope);
                synchronized (SimVm.this) {
                    require("load device state", InstanceState.INCOMING);
                }
                ByteArrayOutputStream received = new ByteArrayOutputStream();
                return new Loader() {
                    @Override
                    public void write(ByteBuffer chunk) throws java.io.IOException {
                        if (received.size() + chunk.remaining() > SimGuest.STATE_BYTES) {
                            throw new java.io.IOException(
                                    "sim device state larger than " + SimGuest.STATE_BYTES + " bytes");
                        }
                        byte[] b = new byte[chunk.remaining()];
                        chunk.get(b);
                        received.writeBytes(b);
                    }

                    @Override
                    public void finish(Duration timeout) throws HypervisorException {
                        try {
                            guest.loadState(received.toByteArray());
                        } catch (IllegalArgumentException e) {
                            throw new HypervisorException("load device state", e.getMessage(), e);
                        }
                    }

                    @Override
                    public void close() {}
                };
            }
        };
    }

    private static void requireDevicesScope(DeviceState.Scope scope) throws HypervisorException {
        if (scope != DeviceState.Scope.DEVICES) {
            throw new HypervisorException(
                    "device state", "the sim driver has no hypervisor-native migration stream; use pre-copy");
        }
    }

    @Override
    public void onUnexpectedExit(Consumer<String> listener) {
        // The simulated guest lives and dies with the agent; it never exits on its own.
    }

    @Override
    public synchronized void close() {
        if (state == InstanceState.CLOSED) {
            return;
        }
        guest.shutdown();
        dirtyLog.stop();
        if (console != null) {
            console.close();
        }
        ram.close();
        if (lease != null) {
            lease.close();
        }
        state = InstanceState.CLOSED;
    }

    private void require(String op, InstanceState... allowed) throws HypervisorException {
        for (InstanceState s : allowed) {
            if (state == s) {
                return;
            }
        }
        throw new HypervisorException(op, "VM " + spec.getName() + " is " + state);
    }
}
