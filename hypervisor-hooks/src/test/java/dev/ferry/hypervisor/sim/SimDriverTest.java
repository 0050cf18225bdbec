package dev.ferry.hypervisor.sim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.DeviceState;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import dev.ferry.testing.TestDirs;
import dev.ferry.testing.Timing;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class SimDriverTest {
    private Path dir;
    private final SimDriver driver = new SimDriver();

    @BeforeEach
    void setUp() throws Exception {
        dir = TestDirs.ramDir("sim");
    }

    @AfterEach
    void tearDown() throws Exception {
        TestDirs.deleteTree(dir);
    }

    private static VmSpec spec(String name, long rate, Pattern pattern) {
        return VmSpec.newBuilder()
                .setName(name)
                .setMemoryBytes(8 << 20)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder()
                        .setDirtyRatePagesPerSec(rate)
                        .setWorkingSetBytes(2 << 20)
                        .setPattern(pattern))
                .build();
    }

    private VmPaths paths(String name) {
        return new VmPaths(dir.resolve(name), dir.resolve(name + ".ram"));
    }

    @Test
    void guestWritesAreTrackedAndPauseStopsThem() throws Exception {
        try (SimVm vm = (SimVm) driver.create(spec("a", 5000, Pattern.PATTERN_RANDOM), paths("a"))) {
            assertTrue(vm.verifyMemory().ok());
            vm.dirtyLog().orElseThrow().start();
            vm.start();
            Timing.await("guest writes", Duration.ofSeconds(5), () -> vm.pageWrites() > 50);
            PageBitmap dirty = new PageBitmap(vm.memory().pageCount());
            vm.dirtyLog().orElseThrow().collect(dirty, true);
            assertTrue(dirty.cardinality() > 0);

            vm.pause();
            long writes = vm.pageWrites();
            PageBitmap afterPause = new PageBitmap(vm.memory().pageCount());
            vm.dirtyLog().orElseThrow().collect(afterPause, true);
            Thread.sleep(50);
            assertEquals(writes, vm.pageWrites(), "a paused guest must not write");
            PageBitmap none = new PageBitmap(vm.memory().pageCount());
            vm.dirtyLog().orElseThrow().collect(none, true);
            assertTrue(none.isEmpty());
            assertTrue(vm.verifyMemory().ok());
            assertEquals(0, vm.staleReads());
        }
        assertFalse(Files.exists(dir.resolve("a.ram")), "close removes the RAM file");
    }

    @Test
    void deviceStateCarriesTheHeartbeatAcrossInstances() throws Exception {
        VmSpec spec = spec("b", 1000, Pattern.PATTERN_COMPRESSIBLE);
        try (SimVm src = (SimVm) driver.create(spec, paths("b"));
                SimVm dst = (SimVm) driver.prepareIncoming(spec, paths("b2"), HypervisorDriver.IncomingKind.PRECOPY)) {
            src.start();
            Timing.await("heartbeat", Duration.ofSeconds(5), () -> src.heartbeat() > 5);
            src.pause();
            long beat = src.heartbeat();
            ByteArrayOutputStream saved = new ByteArrayOutputStream();
            src.deviceState()
                    .save(
                            DeviceState.Scope.DEVICES,
                            chunk -> {
                                byte[] b = new byte[chunk.remaining()];
                                chunk.get(b);
                                saved.writeBytes(b);
                            },
                            DeviceState.SaveLimits.of(Duration.ofSeconds(1)));
            dst.memory().segment().copyFrom(src.memory().segment());
            try (DeviceState.Loader loader = dst.deviceState().load(DeviceState.Scope.DEVICES)) {
                loader.write(ByteBuffer.wrap(saved.toByteArray()));
                loader.finish(Duration.ofSeconds(1));
            }
            assertEquals(beat, dst.heartbeat());
            dst.resume();
            Timing.await("heartbeat continues", Duration.ofSeconds(5), () -> dst.heartbeat() > beat + 3);
            dst.pause();
            assertEquals(0, dst.staleReads());
            assertTrue(dst.verifyMemory().ok());
        }
    }

    @Test
    void verificationCatchesALostPage() throws Exception {
        try (SimVm vm = (SimVm) driver.create(spec("c", 0, Pattern.PATTERN_RANDOM), paths("c"))) {
            long page = SimGuest.tablePages(vm.memory().pageCount(), 4096) + 3;
            vm.memory().segment().set(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, page * 4096 + 100, 42L);
            SimGuest.Verification v = vm.verifyMemory();
            assertEquals(1, v.badPages());
            assertEquals(page, v.firstBadPage());
        }
    }

    @Test
    void refusesWhatItCannotRun() {
        VmSpec kernel = spec("d", 0, Pattern.PATTERN_RANDOM).toBuilder()
                .setBoot(dev.ferry.proto.vm.DirectBoot.newBuilder().setKernel("/boot/vmlinuz"))
                .build();
        HypervisorException e = assertThrows(HypervisorException.class, () -> driver.create(kernel, paths("d")));
        assertTrue(e.getMessage().contains("qemu"), e.getMessage());
        assertThrows(
                HypervisorException.class,
                () -> driver.prepareIncoming(
                        spec("e", 0, Pattern.PATTERN_RANDOM),
                        paths("e"),
                        HypervisorDriver.IncomingKind.HYPERVISOR_NATIVE));
    }
}
