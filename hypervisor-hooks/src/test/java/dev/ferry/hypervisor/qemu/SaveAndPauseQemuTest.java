package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.DeviceState;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.InstanceState;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import dev.ferry.testing.TestDirs;
import dev.ferry.testing.Timing;
import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The device-state save that lets QEMU pause the guest itself (its set-up runs while the guest
 * does, so it is not downtime): the pause is reported before the device state streams, and a
 * save that fails leaves the guest running.
 */
class SaveAndPauseQemuTest {
    private static final DeviceState.SaveLimits LIMITS = DeviceState.SaveLimits.of(Timing.seconds(20));
    private Path dir;
    private QemuDriver driver;

    @BeforeEach
    void setUp() throws Exception {
        Path natives = QemuTestSupport.requireNative();
        dir = TestDirs.ramDir("save-pause");
        driver = QemuDriver.create(QemuDriver.Settings.defaults(), natives);
    }

    @AfterEach
    void tearDown() throws Exception {
        TestDirs.deleteTree(dir);
    }

    private VmInstance runningGuest(String name) throws Exception {
        VmSpec spec = VmSpec.newBuilder()
                .setSchemaVersion(1)
                .setName(name)
                .setMemoryBytes(64L << 20)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder()
                        .setPattern(Pattern.PATTERN_RANDOM)
                        .setDirtyRatePagesPerSec(1000)
                        .setWorkingSetBytes(8L << 20))
                .build();
        VmInstance vm = driver.create(spec, new VmPaths(dir.resolve(name), dir.resolve(name + ".ram")));
        vm.start();
        Timing.await("guest heartbeat", Duration.ofSeconds(20), () -> vm.heartbeat() >= 2);
        return vm;
    }

    @Test
    void qemuPausesTheGuestAndSaysWhen() throws Exception {
        try (VmInstance vm = runningGuest("sp-ok")) {
            DeviceState ds = vm.deviceState();
            assertTrue(ds.pausesForSave());
            ds.prepareSave(DeviceState.Scope.DEVICES, LIMITS);
            java.util.concurrent.atomic.AtomicReference<java.time.Instant> pausedAt =
                    new java.util.concurrent.atomic.AtomicReference<>();
            java.time.Instant before = java.time.Instant.now();
            AtomicLong bytes = new AtomicLong();
            long saved = ds.saveAndPause(chunk -> bytes.addAndGet(chunk.remaining()), LIMITS, pausedAt::set);
            java.time.Instant after = java.time.Instant.now();
            assertEquals(saved, bytes.get());
            assertTrue(saved > 0);
            // QEMU's clock, this host: the stop lies within the save.
            assertTrue(
                    !pausedAt.get().isBefore(before.minusMillis(5))
                            && !pausedAt.get().isAfter(after.plusMillis(5)),
                    before + " <= " + pausedAt.get() + " <= " + after);
            assertEquals(InstanceState.PAUSED, vm.state());
            long heartbeat = vm.heartbeat();
            Thread.sleep(300);
            assertEquals(heartbeat, vm.heartbeat(), "paused guests do not count");
            vm.resume();
            assertEquals(InstanceState.RUNNING, vm.state());
            Timing.await(
                    "guest runs again on the source", Duration.ofSeconds(20), () -> vm.heartbeat() > heartbeat + 1);
        }
    }

    @Test
    void aSaveWhoseStreamBreaksLeavesTheGuestRunning() throws Exception {
        try (VmInstance vm = runningGuest("sp-broken")) {
            DeviceState ds = vm.deviceState();
            HypervisorException e = assertThrows(
                    HypervisorException.class,
                    () -> ds.saveAndPause(
                            chunk -> {
                                throw new IOException("peer went away");
                            },
                            LIMITS,
                            at -> {}));
            assertTrue(e.getMessage().contains("peer went away"), e.getMessage());
            vm.resume();
            assertEquals(InstanceState.RUNNING, vm.state());
            long heartbeat = vm.heartbeat();
            Timing.await("guest keeps counting", Duration.ofSeconds(20), () -> vm.heartbeat() > heartbeat + 1);
        }
    }
}
