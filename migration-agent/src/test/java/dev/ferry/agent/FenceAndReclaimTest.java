package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.qemu.QemuDriver;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.Workload;
import dev.ferry.rpc.Endpoint;
import dev.ferry.testing.TestDirs;
import dev.ferry.testing.Timing;
import io.grpc.Status;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The agent's side of the fence, with an ownership the test controls: fencing freezes guests and
 * kills nothing; a VM confirmed as this host's runs on, one given to another host is killed; a
 * lease that is not renewed stops the guest by itself; a restarted agent adopts its guests.
 */
class FenceAndReclaimTest {
    /** A cluster stand-in: the test says whether this host owns each VM, and how far its evidence reaches. */
    static final class TestOwnership implements Ownership {
        volatile boolean owned = true;
        volatile boolean evidence = true;

        @Override
        public void acquire(String vm, long epoch) throws AgentException {
            if (!owned) {
                throw new AgentException(Status.Code.FAILED_PRECONDITION, vm + " belongs to host-b at epoch 2");
            }
        }

        @Override
        public void release(String vm, long epoch) {}

        @Override
        public boolean leases() {
            return true;
        }

        @Override
        public long leaseDeadline(String vm, long epoch) {
            return owned && evidence ? System.nanoTime() + Timing.seconds(5).toNanos() : 0;
        }

        @Override
        public long arrivalLeaseDeadline() {
            return evidence ? System.nanoTime() + Timing.seconds(5).toNanos() : 0;
        }
    }

    private Path root;
    private final TestOwnership ownership = new TestOwnership();

    @BeforeEach
    void setUp() throws Exception {
        root = TestDirs.ramDir("fence");
    }

    @AfterEach
    void tearDown() throws Exception {
        TestDirs.deleteTree(root);
    }

    private Agent agent(dev.ferry.hypervisor.HypervisorDriver driver) throws Exception {
        AgentConfig config = AgentConfig.of("host-a", Endpoint.parse("127.0.0.1:0"), root.resolve("data"))
                .withRamDir(root.resolve("ram"));
        return new Agent(config, driver, CommitProvider.local(), ownership).start();
    }

    private static VmSpec spec(String name, long memory) {
        return VmSpec.newBuilder()
                .setSchemaVersion(1)
                .setName(name)
                .setMemoryBytes(memory)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder()
                        .setPattern(Pattern.PATTERN_RANDOM)
                        .setDirtyRatePagesPerSec(2000)
                        .setWorkingSetBytes(memory / 2))
                .build();
    }

    private static boolean progresses(VmInstance vm) throws InterruptedException {
        long before = vm.heartbeat();
        Thread.sleep(Timing.seconds(0.6).toMillis());
        return vm.heartbeat() > before;
    }

    @Test
    void aFencedGuestIsFrozenNotKilledAndRunsOnWhenTheClusterConfirmsIt() throws Exception {
        try (Agent agent = agent(new SimDriver())) {
            agent.registryForTests().create(spec("v", 4L << 20), true, 1);
            VmInstance vm = agent.instance("v");
            assertTrue(progresses(vm));

            assertEquals(List.of("v"), agent.fence("fenced: lost the cluster session"));
            assertEquals(
                    VmState.VM_STATE_FENCED, agent.registryForTests().get("v").state());
            assertTrue(vm.frozen());
            assertFalse(progresses(vm), "a fenced guest executes nothing");
            assertTrue(agent.anyFenced());

            assertEquals(Map.of("v", "running again"), agent.reclaim());
            assertEquals(
                    VmState.VM_STATE_RUNNING, agent.registryForTests().get("v").state());
            assertTrue(progresses(vm), "confirmed, the same guest runs on");
            assertFalse(agent.anyFenced());
        }
    }

    @Test
    void aFencedGuestThatTheClusterGaveToAnotherHostIsKilled() throws Exception {
        try (Agent agent = agent(new SimDriver())) {
            agent.registryForTests().create(spec("v", 4L << 20), true, 1);
            agent.fence("fenced: lost the cluster session");
            ownership.owned = false;
            VmInstance vm = agent.instance("v");
            String outcome = agent.reclaim().get("v");
            assertTrue(outcome.startsWith("killed: v belongs to host-b"), outcome);
            assertFalse(agent.holds("v"));
            assertNull(agent.instance("v"), "the copy is gone, and with it the entry");
            assertEquals(dev.ferry.hypervisor.InstanceState.CLOSED, vm.state());
            assertFalse(Files.exists(root.resolve("data").resolve("vms").resolve("v")), "no run directory left");
            assertFalse(Files.exists(root.resolve("ram").resolve("v.ram")), "no RAM file left");
        }
    }

    @Test
    void aGuestWhoseLeaseIsNotRenewedStopsByItselfAndRunsOnOnceItIs() throws Exception {
        try (Agent agent = agent(new SimDriver())) {
            agent.registryForTests().create(spec("v", 4L << 20), true, 1);
            VmInstance vm = agent.instance("v");
            assertTrue(progresses(vm));
            // The agent can no longer prove its standing (no answered probe): nothing renews the lease.
            ownership.evidence = false;
            Timing.await("the lease to run out", Duration.ofSeconds(15), vm::frozen);
            assertFalse(progresses(vm));
            assertEquals(
                    VmState.VM_STATE_RUNNING,
                    agent.registryForTests().get("v").state(),
                    "not fenced: paused by its lease");
            ownership.evidence = true;
            Timing.await("renewed and continued", Duration.ofSeconds(5), () -> !vm.frozen());
            assertTrue(progresses(vm));
        }
    }

    @Test
    void anAgentRestartedOnTheSameDirectoriesAdoptsItsQemuGuestFencedUntilConfirmed() throws Exception {
        QemuTestSupport.requireQemu();
        Path natives = root.resolve("native");
        Agent first = agent(QemuDriver.create(QemuDriver.Settings.defaults(), natives));
        long pid;
        try {
            first.registryForTests().create(spec("q", 32L << 20), true, 3);
            VmInstance vm = first.instance("q");
            Timing.await("heartbeat", Duration.ofSeconds(20), () -> vm.heartbeat() >= 3);
            assertTrue(vm.survivesAgent());
            pid = qemuPid("q");
            assertEquals(List.of("q"), first.closeLeavingGuests());
        } finally {
            first.close();
        }
        assertTrue(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "the guest outlives its agent");

        try (Agent next = agent(QemuDriver.create(QemuDriver.Settings.defaults(), natives))) {
            ManagedVm m = next.registryForTests().get("q");
            assertNotNull(m.instance(), "adopted");
            assertEquals(3, m.epoch(), "at the epoch it ran at");
            assertEquals(VmState.VM_STATE_FENCED, m.state(), "in a cluster, until the cluster confirms it");
            assertEquals(Map.of("q", "running again"), next.reclaim());
            assertEquals(VmState.VM_STATE_RUNNING, m.state());
            assertTrue(progresses(m.instance()), "the same QEMU runs on");
            assertEquals(pid, qemuPid("q"));
        }
        assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "closing the agent stops it");
    }

    @Test
    void aRestartedAgentKillsWhatItCannotAdopt() throws Exception {
        QemuTestSupport.requireQemu();
        Path natives = root.resolve("native");
        Agent first = agent(QemuDriver.create(QemuDriver.Settings.defaults(), natives));
        long pid;
        try {
            first.registryForTests().create(spec("k", 32L << 20), true, 1);
            pid = qemuPid("k");
            first.closeLeavingGuests();
        } finally {
            first.close();
        }
        // Its record is lost (as for a destination that never committed): nothing to adopt it by.
        Files.delete(root.resolve("data").resolve("vms").resolve("k").resolve("vm.pb"));
        try (Agent next = agent(QemuDriver.create(QemuDriver.Settings.defaults(), natives))) {
            assertFalse(next.holds("k"));
            assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "the orphan is killed");
            assertFalse(Files.exists(root.resolve("ram").resolve("k.ram")));
        }
    }

    private long qemuPid(String vm) throws Exception {
        String[] f = Files.readString(
                        root.resolve("data").resolve("vms").resolve(vm).resolve("qemu.pid"))
                .trim()
                .split(" ");
        return Long.parseLong(f[0]);
    }
}
