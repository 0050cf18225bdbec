package dev.ferry.cluster.testing;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.coordinator.AgentActions;
import dev.ferry.proto.agent.CancelMigrationResponse;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.VmRequest;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.vm.VmStatus;
import io.grpc.Status;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.Predicate;

/**
 * Real agent calls, with a gate for fault injection: a CreateVm the predicate picks never reaches
 * its agent; the calling thread hangs there (as if its coordinator froze mid-step) until it is
 * interrupted. Counts the CreateVm calls that went through.
 */
public final class GatedAgentActions implements AgentActions {
    private final AgentActions inner;
    private volatile Predicate<CreateVmRequest> hold = r -> false;
    private final CountDownLatch held = new CountDownLatch(1);
    private final AtomicInteger creates = new AtomicInteger();

    public GatedAgentActions(AgentActions inner) {
        this.inner = inner;
    }

    public void hold(Predicate<CreateVmRequest> which) {
        this.hold = which;
    }

    public CountDownLatch held() {
        return held;
    }

    public int creates() {
        return creates.get();
    }

    @Override
    public VmStatus createVm(HostRecord host, CreateVmRequest request) {
        if (hold.test(request)) {
            held.countDown();
            try {
                Thread.sleep(Long.MAX_VALUE);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            throw new AgentCallException(Status.Code.CANCELLED, "interrupted", null);
        }
        creates.incrementAndGet();
        return inner.createVm(host, request);
    }

    @Override
    public VmStatus startVm(HostRecord host, VmRequest request) {
        return inner.startVm(host, request);
    }

    @Override
    public VmStatus stopVm(HostRecord host, VmRequest request) {
        return inner.stopVm(host, request);
    }

    @Override
    public VmStatus deleteVm(HostRecord host, VmRequest request) {
        return inner.deleteVm(host, request);
    }

    @Override
    public VmStatus getVm(HostRecord host, String vm) {
        return inner.getVm(host, vm);
    }

    @Override
    public List<VmStatus> listVms(HostRecord host) {
        return inner.listVms(host);
    }

    @Override
    public MigrationEvent migrate(HostRecord source, MigrateRequest request, Consumer<MigrationEvent> events) {
        return inner.migrate(source, request, events);
    }

    @Override
    public CancelMigrationResponse cancelMigration(HostRecord source, String vm) {
        return inner.cancelMigration(source, vm);
    }

    @Override
    public void close() {
        inner.close();
    }
}
