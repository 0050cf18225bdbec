package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.ferry.hypervisor.sim.SimVm;
import dev.ferry.proto.vm.VmSpec;

/** {@link CommitPhaseContract} on the sim driver: the guest checks every page it rewrites. */
class CommitPhaseTest extends CommitPhaseContract {
    @Override
    AgentPair pair() throws Exception {
        return new AgentPair();
    }

    @Override
    VmSpec guest(String name) {
        return AgentPair.busyGuest(name, 32L << 20, 2000);
    }

    @Override
    void assertNoStalePages(Agent agent, String vm) {
        assertEquals(0, ((SimVm) agent.instance(vm)).staleReads(), "the guest found a stale page on " + agent.hostId());
    }
}
