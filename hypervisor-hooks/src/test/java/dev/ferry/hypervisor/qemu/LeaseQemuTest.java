package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.InstanceState;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.hypervisor.lease.LeaseFile;
import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import dev.ferry.testing.TestDirs;
import dev.ferry.testing.Timing;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The fence below the agent on a real QEMU: the guest's lease, enforced by the kernel inside
 * QEMU's process (libferryhook's SIGSTOP timer), stops the guest when nobody renews it; and a
 * QEMU that outlived its agent is adopted by a new driver (a restarted agent) and keeps running.
 */
class LeaseQemuTest {
    private Path dir;
    private QemuDriver driver;

    @BeforeEach
    void setUp() throws Exception {
        Path natives = QemuTestSupport.requireNative();
        dir = TestDirs.ramDir("lease");
        driver = QemuDriver.create(QemuDriver.Settings.defaults(), natives);
    }

    @AfterEach
    void tearDown() throws Exception {
        TestDirs.deleteTree(dir);
    }

    private static VmSpec spec(String name) {
        return VmSpec.newBuilder()
                .setSchemaVersion(1)
                .setName(name)
                .setMemoryBytes(32L << 20)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder()
                        .setPattern(Pattern.PATTERN_RANDOM)
                        .setDirtyRatePagesPerSec(500)
                        .setWorkingSetBytes(4L << 20))
                .build();
    }

    private VmPaths paths(String name) throws Exception {
        Path run = dir.resolve(name);
        Files.createDirectories(run);
        return new VmPaths(run, dir.resolve(name + ".ram"), run.resolve("lease"));
    }

    private static long deadlineIn(Duration d) {
        return System.nanoTime() + d.toNanos();
    }

    /** Heartbeats are printed every 100 ms; "progress" is a higher one within a second. */
    private static boolean progresses(VmInstance vm) throws InterruptedException {
        long before = vm.heartbeat();
        Thread.sleep(Timing.seconds(1).toMillis());
        return vm.heartbeat() > before;
    }

    @Test
    void aGuestWhoseLeaseNobodyRenewsStopsByItselfAndRunsOnOnceRenewed() throws Exception {
        VmPaths p = paths("lapse");
        try (LeaseFile lease = LeaseFile.create(p.leaseFile(), deadlineIn(Timing.seconds(60)))) {
            VmInstance vm = driver.create(spec("lapse"), p);
            try {
                vm.start();
                Timing.await("first heartbeats", Duration.ofSeconds(20), () -> vm.heartbeat() >= 3);
                assertFalse(vm.frozen());

                // Nobody renews (the agent is frozen): the deadline passes and the kernel stops QEMU.
                lease.grantUntil(deadlineIn(Duration.ofMillis(300)));
                Timing.await("QEMU stopped by its lease", Duration.ofSeconds(5), vm::frozen);
                assertFalse(progresses(vm), "a guest past its lease must not make progress");

                // Continued by someone who did not renew the lease: it stops again at once.
                Linux.kill(((QemuVm) vm).pid(), Linux.SIGCONT);
                Timing.await("stopped again", Duration.ofSeconds(5), vm::frozen);
                assertFalse(progresses(vm), "continued without a lease, the guest must not make progress");

                // Renewed, then thawed: the guest runs on where it stopped.
                lease.grantUntil(deadlineIn(Timing.seconds(60)));
                vm.thaw();
                assertTrue(progresses(vm), "renewed and thawed, the guest runs on");
                assertEquals(InstanceState.RUNNING, vm.state());

                // Revoked (the fence): stopped within the hook's poll interval, without QMP.
                lease.revoke();
                Timing.await("QEMU stopped by the revoked lease", Duration.ofSeconds(2), vm::frozen);
            } finally {
                vm.close();
            }
            assertFalse(ProcessHandle.of(((QemuVm) vm).pid())
                    .map(ProcessHandle::isAlive)
                    .orElse(false));
        }
    }

    @Test
    void aQemuLeftByAnExitingAgentIsAdoptedByTheNextAndKeepsRunning() throws Exception {
        VmPaths p = paths("adopt");
        VmInstance adopted = null;
        try (LeaseFile lease = LeaseFile.create(p.leaseFile(), deadlineIn(Timing.seconds(60)))) {
            VmInstance first = driver.create(spec("adopt"), p);
            first.start();
            Timing.await("first heartbeats", Duration.ofSeconds(20), () -> first.heartbeat() >= 3);
            long pid = ((QemuVm) first).pid();
            assertTrue(first.survivesAgent());
            first.detach();
            assertTrue(ProcessHandle.of(pid).orElseThrow().isAlive(), "detach leaves QEMU running");
            assertTrue(Files.exists(p.ramFile()), "detach leaves the RAM file");

            // A new agent process: a new driver finds the same QEMU from its files.
            QemuDriver next = QemuDriver.create(QemuDriver.Settings.defaults(), QemuTestSupport.requireNative());
            Optional<VmInstance> found = next.adopt(spec("adopt"), p);
            assertTrue(found.isPresent(), "the running QEMU is found again");
            adopted = found.get();
            assertEquals(pid, ((QemuVm) adopted).pid());
            assertEquals(InstanceState.RUNNING, adopted.state());
            assertTrue(progresses(adopted), "the adopted guest keeps running");
            // QMP works on the adopted QEMU: a pause and a resume.
            adopted.pause();
            assertFalse(progresses(adopted));
            adopted.resume();
            assertTrue(progresses(adopted));
        } finally {
            if (adopted != null) {
                adopted.close();
            }
        }
        assertFalse(Files.exists(p.ramFile()), "closing the adopted VM removes its RAM file");
    }

    @Test
    void aQemuStoppedByItsLeaseIsAdoptedStoppedAndConnectedOnlyOnceThawed() throws Exception {
        VmPaths p = paths("stopped");
        VmInstance adopted = null;
        try (LeaseFile lease = LeaseFile.create(p.leaseFile(), deadlineIn(Timing.seconds(60)))) {
            VmInstance first = driver.create(spec("stopped"), p);
            first.start();
            Timing.await("first heartbeats", Duration.ofSeconds(20), () -> first.heartbeat() >= 3);
            first.detach();
            // The agent is gone for longer than the lease: the guest stops by itself.
            lease.grantUntil(deadlineIn(Duration.ofMillis(200)));
            Timing.await(
                    "stopped by its lease",
                    Duration.ofSeconds(5),
                    () -> QemuProcess.recorded(p.runDir().resolve("qemu.pid"))
                            .map(h -> procState(h.pid()) == 'T')
                            .orElse(false));

            adopted = driver.adopt(spec("stopped"), p).orElseThrow();
            assertTrue(adopted.frozen(), "adopted as it is: stopped");
            assertFalse(progresses(adopted));
            lease.grantUntil(deadlineIn(Timing.seconds(60)));
            adopted.thaw();
            assertTrue(progresses(adopted), "runs on once its lease is renewed and it is thawed");
            adopted.pause();
            adopted.resume();
        } finally {
            if (adopted != null) {
                adopted.close();
            }
        }
    }

    @Test
    void nothingIsAdoptedWhenTheQemuIsGone() throws Exception {
        VmPaths p = paths("gone");
        try (LeaseFile lease = LeaseFile.create(p.leaseFile(), deadlineIn(Timing.seconds(60)))) {
            VmInstance first = driver.create(spec("gone"), p);
            first.start();
            long pid = ((QemuVm) first).pid();
            first.detach();
            Linux.kill(pid, Linux.SIGKILL);
            Timing.await(
                    "QEMU gone",
                    Duration.ofSeconds(5),
                    // One lookup: the process may vanish between two (a flake once: "No value present").
                    () -> !ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false));
            assertTrue(driver.adopt(spec("gone"), p).isEmpty());
        }
    }

    private static char procState(long pid) {
        try {
            String stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
            return stat.charAt(stat.lastIndexOf(')') + 2);
        } catch (Exception e) {
            return '?';
        }
    }
}
