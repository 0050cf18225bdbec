package dev.ferry.agent;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.migration.commit.CommitOutcome;
import dev.ferry.migration.commit.LocalOwnershipCommit;
import dev.ferry.migration.commit.OwnershipCommit;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import io.grpc.Status;
import java.time.Duration;

/**
 * Where this agent's migrations commit ownership. Without a cluster store it is the local commit
 * (the destination agent is the authority); the cluster coordinator supplies the ZooKeeper one.
 */
public interface CommitProvider {
    /** The commit for one outgoing migration to {@code target}. */
    OwnershipCommit outgoing(AgentClient target);

    /** The commit incoming migrations consult. */
    OwnershipCommit incoming();

    static CommitProvider local() {
        return new CommitProvider() {
            @Override
            public OwnershipCommit outgoing(AgentClient target) {
                return new LocalOwnershipCommit(
                        (request, timeout) -> probe(target, request.vm(), request.newEpoch(), timeout));
            }

            @Override
            public OwnershipCommit incoming() {
                return new LocalOwnershipCommit((request, timeout) -> CommitOutcome.UNKNOWN);
            }
        };
    }

    /** Asks the destination agent whether it runs the VM at the new epoch, until it knows or time runs out. */
    private static CommitOutcome probe(AgentClient target, String vm, long newEpoch, Duration timeout)
            throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            try {
                VmStatus s = target.getVm(vm);
                if (s.getState() != VmState.VM_STATE_INCOMING) {
                    return s.getEpoch() >= newEpoch ? CommitOutcome.COMMITTED : CommitOutcome.REJECTED;
                }
            } catch (AgentCallException e) {
                if (e.code() == Status.Code.NOT_FOUND) {
                    return CommitOutcome.REJECTED;
                }
            }
            if (System.nanoTime() > deadline) {
                return CommitOutcome.UNKNOWN;
            }
            Thread.sleep(200);
        }
    }
}
