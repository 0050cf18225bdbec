package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.hypervisor.HostCapabilities;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.rpc.Transport;
import io.grpc.Status;
import org.junit.jupiter.api.Test;

/** A host whose kernel lacks the dirty-tracking features refuses pre-copy with the probe's words. */
class NoDirtyTrackingTest {
    /** The sim driver on a host that says it cannot track writes (as a kernel without WP-async would). */
    private static final class Untracked implements HypervisorDriver {
        private final SimDriver sim = new SimDriver();

        @Override
        public String name() {
            return "sim";
        }

        @Override
        public HostCapabilities capabilities() {
            return new HostCapabilities(false, "this kernel lacks UFFD_FEATURE_WP_ASYNC", false);
        }

        @Override
        public void validate(VmSpec spec) throws HypervisorException {
            sim.validate(spec);
        }

        @Override
        public VmInstance create(VmSpec spec, VmPaths paths) throws HypervisorException {
            return sim.create(spec, paths);
        }

        @Override
        public VmInstance prepareIncoming(VmSpec spec, VmPaths paths, IncomingKind kind) throws HypervisorException {
            return sim.prepareIncoming(spec, paths, kind);
        }

        @Override
        public void close() {}
    }

    @Test
    void precopyIsRefusedWithWhatTheKernelLacksAndTheVmKeepsRunning() throws Exception {
        try (AgentPair pair = new AgentPair(Transport.plaintext(), dir -> new Untracked())) {
            pair.createRunning(AgentPair.busyGuest("v", 16L << 20, 100));
            AgentCallException e = assertThrows(
                    AgentCallException.class,
                    () -> pair.clientA.migrate(
                            MigrateRequest.newBuilder()
                                    .setVm("v")
                                    .setTargetHost("host-b")
                                    .setTargetEndpoint(pair.b.endpoint().toString())
                                    .build(),
                            ev -> {}));
            assertEquals(Status.Code.FAILED_PRECONDITION, e.code());
            assertTrue(e.getMessage().contains("lacks UFFD_FEATURE_WP_ASYNC"), e.getMessage());
            assertTrue(e.getMessage().contains("qemu-native"), e.getMessage());
            assertEquals(VmState.VM_STATE_RUNNING, pair.clientA.getVm("v").getState());
        }
    }
}
