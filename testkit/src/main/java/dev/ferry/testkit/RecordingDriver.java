package dev.ferry.testkit;

import dev.ferry.hypervisor.DeviceState;
import dev.ferry.hypervisor.DirtyLog;
import dev.ferry.hypervisor.GuestMemory;
import dev.ferry.hypervisor.HostCapabilities;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.InstanceState;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.proto.vm.VmSpec;
import java.util.Optional;
import java.util.function.Consumer;

/** A driver that tells the {@link RunLog} whenever a guest starts or stops executing. */
public final class RecordingDriver implements HypervisorDriver {
    private final HypervisorDriver inner;
    private final String host;
    private final RunLog log;

    public RecordingDriver(HypervisorDriver inner, String host, RunLog log) {
        this.inner = inner;
        this.host = host;
        this.log = log;
    }

    @Override
    public String name() {
        return inner.name();
    }

    @Override
    public HostCapabilities capabilities() {
        return inner.capabilities();
    }

    @Override
    public dev.ferry.hypervisor.HypervisorProfile profile() throws HypervisorException {
        return inner.profile();
    }

    @Override
    public void validate(VmSpec spec) throws HypervisorException {
        inner.validate(spec);
    }

    @Override
    public VmInstance create(VmSpec spec, VmPaths paths) throws HypervisorException {
        return new Recorded(inner.create(spec, paths));
    }

    @Override
    public VmInstance prepareIncoming(VmSpec spec, VmPaths paths, IncomingKind kind) throws HypervisorException {
        return new Recorded(inner.prepareIncoming(spec, paths, kind));
    }

    @Override
    public void close() {
        inner.close();
    }

    private final class Recorded implements VmInstance {
        private final VmInstance vm;

        Recorded(VmInstance vm) {
            this.vm = vm;
        }

        private String name() {
            return vm.spec().getName();
        }

        @Override
        public VmSpec spec() {
            return vm.spec();
        }

        @Override
        public InstanceState state() {
            return vm.state();
        }

        @Override
        public void start() throws HypervisorException {
            log.record(host, name(), RunLog.Event.BEGIN);
            try {
                vm.start();
            } catch (HypervisorException | RuntimeException e) {
                log.record(host, name(), RunLog.Event.END);
                throw e;
            }
        }

        @Override
        public void pause() throws HypervisorException {
            vm.pause();
            log.record(host, name(), RunLog.Event.END);
        }

        @Override
        public void resume() throws HypervisorException {
            log.record(host, name(), RunLog.Event.BEGIN);
            try {
                vm.resume();
            } catch (HypervisorException | RuntimeException e) {
                log.record(host, name(), RunLog.Event.END);
                throw e;
            }
        }

        @Override
        public void stop() throws HypervisorException {
            vm.stop();
            log.record(host, name(), RunLog.Event.END);
        }

        @Override
        public void freeze() throws HypervisorException {
            vm.freeze();
            log.record(host, name(), RunLog.Event.END);
        }

        @Override
        public void thaw() throws HypervisorException {
            log.record(host, name(), RunLog.Event.BEGIN);
            vm.thaw();
        }

        @Override
        public boolean frozen() {
            return vm.frozen();
        }

        @Override
        public GuestMemory memory() {
            return vm.memory();
        }

        @Override
        public Optional<DirtyLog> dirtyLog() {
            return vm.dirtyLog();
        }

        /**
         * A hypervisor that pauses the guest itself for its save (QEMU) stops it without a call to
         * {@link #pause}: its STOP is recorded when the hypervisor reports it, and the end of a
         * whole-VM save (which leaves the guest stopped) when the save returns.
         */
        @Override
        public DeviceState deviceState() {
            DeviceState inner = vm.deviceState();
            return new DeviceState() {
                @Override
                public void prepareSave(Scope scope, SaveLimits limits) throws HypervisorException {
                    inner.prepareSave(scope, limits);
                }

                @Override
                public long save(Scope scope, Sink sink, SaveLimits limits) throws HypervisorException {
                    long n = inner.save(scope, sink, limits);
                    if (scope == Scope.EVERYTHING) {
                        log.record(host, name(), RunLog.Event.END);
                    }
                    return n;
                }

                @Override
                public Loader load(Scope scope) throws HypervisorException {
                    return inner.load(scope);
                }

                @Override
                public boolean pausesForSave() {
                    return inner.pausesForSave();
                }

                @Override
                public long saveAndPause(Sink sink, SaveLimits limits, Consumer<java.time.Instant> pausedAt)
                        throws HypervisorException {
                    return inner.saveAndPause(sink, limits, at -> {
                        log.record(host, name(), RunLog.Event.END);
                        pausedAt.accept(at);
                    });
                }
            };
        }

        @Override
        public java.time.Duration switchoverCostEstimate() {
            return vm.switchoverCostEstimate();
        }

        @Override
        public long heartbeat() {
            return vm.heartbeat();
        }

        @Override
        public void onUnexpectedExit(Consumer<String> listener) {
            vm.onUnexpectedExit(listener);
        }

        @Override
        public void close() {
            vm.close();
            log.record(host, name(), RunLog.Event.END);
        }
    }
}
