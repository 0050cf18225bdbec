package dev.ferry.cluster.bench;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.coordinator.AgentActions;
import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.Records;
import dev.ferry.proto.agent.CancelMigrationRequest;
import dev.ferry.proto.agent.CancelMigrationResponse;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.LeaderTermRequest;
import dev.ferry.proto.agent.LeaderTermResponse;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.SetMigrationLimitsRequest;
import dev.ferry.proto.agent.SetMigrationLimitsResponse;
import dev.ferry.proto.agent.VmRequest;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmRecord;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import io.grpc.Status;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.Stat;

/**
 * Agents that only register and report: each host is a real ZooKeeper session (a plain client,
 * rooted at the cluster's namespace) holding its registration and its VMs' run locks. Asked to
 * start a VM, a host does what a real agent's run lock does: it checks the record names it at the
 * epoch and creates the lock in the same transaction. Nothing runs.
 */
public final class SimulatedAgents implements AgentActions {
    /** One simulated host. */
    public static final class Host {
        final String id;
        final ZooKeeper zk;
        final Map<String, Long> vms = new ConcurrentHashMap<>();

        Host(String id, ZooKeeper zk) {
            this.id = id;
            this.zk = zk;
        }

        public String id() {
            return id;
        }

        /** The host dies: its session closes, and ZooKeeper deletes its registration and run locks at once. */
        public void kill() throws InterruptedException {
            zk.close();
        }
    }

    private final String connect;
    private final int sessionTimeoutMs;
    private final Map<String, Host> hosts = new ConcurrentHashMap<>();

    /** @param connect ZooKeeper connect string with the cluster's namespace as chroot (host:port/ferry/NAME) */
    public SimulatedAgents(String connect, int sessionTimeoutMs) {
        this.connect = connect;
        this.sessionTimeoutMs = sessionTimeoutMs;
    }

    /** Connects and registers a host. */
    public Host join(String id, long memoryBytes, int vcpus) throws IOException, InterruptedException, KeeperException {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(connect, sessionTimeoutMs, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) {
                connected.countDown();
            }
        });
        if (!connected.await(60, TimeUnit.SECONDS)) {
            zk.close();
            throw new IOException("simulated host " + id + " cannot connect to ZooKeeper");
        }
        HostRecord r = HostRecord.newBuilder()
                .setSchemaVersion(Records.SCHEMA_VERSION)
                .setHostId(id)
                .setEndpoint("127.0.0.1:1")
                .setMemoryBytes(memoryBytes)
                .setVcpus(vcpus)
                .setDriver("simulated")
                .build();
        zk.create(ClusterPaths.host(id), Records.encode(r), ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.EPHEMERAL);
        Host h = new Host(id, zk);
        hosts.put(id, h);
        return h;
    }

    public Host host(String id) {
        return hosts.get(id);
    }

    /** Takes the run locks of VMs a host already runs (seeding), in batches. */
    public void holdRunning(String hostId, List<String> vms, long epoch) throws InterruptedException, KeeperException {
        Host h = hosts.get(hostId);
        List<Op> ops = new ArrayList<>();
        for (String vm : vms) {
            ops.add(Op.create(
                    ClusterPaths.running(vm),
                    Records.encode(running(hostId, epoch)),
                    ZooDefs.Ids.OPEN_ACL_UNSAFE,
                    CreateMode.EPHEMERAL));
            h.vms.put(vm, epoch);
            if (ops.size() == 100) {
                h.zk.multi(ops);
                ops.clear();
            }
        }
        if (!ops.isEmpty()) {
            h.zk.multi(ops);
        }
    }

    private static RunningRecord running(String host, long epoch) {
        return RunningRecord.newBuilder()
                .setSchemaVersion(Records.SCHEMA_VERSION)
                .setHostId(host)
                .setEpoch(epoch)
                .setSinceMs(System.currentTimeMillis())
                .build();
    }

    private Host alive(HostRecord host) {
        Host h = hosts.get(host.getHostId());
        if (h == null || !h.zk.getState().isAlive()) {
            throw new AgentCallException(
                    Status.Code.UNAVAILABLE, "agent " + host.getHostId() + " is unreachable", null);
        }
        return h;
    }

    @Override
    public VmStatus createVm(HostRecord host, CreateVmRequest request) {
        Host h = alive(host);
        String vm = request.getSpec().getName();
        try {
            Stat stat = new Stat();
            VmRecord r = Records.vm(ClusterPaths.vm(vm), h.zk.getData(ClusterPaths.vm(vm), false, stat));
            if (!r.getOwner().equals(h.id) || r.getEpoch() != request.getEpoch()) {
                throw new AgentCallException(
                        Status.Code.FAILED_PRECONDITION,
                        "VM '" + vm + "' belongs to " + r.getOwner() + " at epoch " + r.getEpoch(),
                        null);
            }
            if (request.getStart()) {
                h.zk.multi(List.of(
                        Op.check(ClusterPaths.vm(vm), stat.getVersion()),
                        Op.create(
                                ClusterPaths.running(vm),
                                Records.encode(running(h.id, request.getEpoch())),
                                ZooDefs.Ids.OPEN_ACL_UNSAFE,
                                CreateMode.EPHEMERAL)));
            }
            h.vms.put(vm, request.getEpoch());
            return status(h, vm);
        } catch (KeeperException e) {
            throw new AgentCallException(
                    Status.Code.FAILED_PRECONDITION, "cannot take the run lock of " + vm + ": " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AgentCallException(Status.Code.CANCELLED, "interrupted", e);
        }
    }

    private static VmStatus status(Host h, String vm) {
        Long epoch = h.vms.get(vm);
        if (epoch == null) {
            throw new AgentCallException(Status.Code.NOT_FOUND, "no VM named '" + vm + "' on " + h.id, null);
        }
        return VmStatus.newBuilder()
                .setHost(h.id)
                .setEpoch(epoch)
                .setState(VmState.VM_STATE_RUNNING)
                .setDriver("simulated")
                .build();
    }

    @Override
    public VmStatus startVm(HostRecord host, VmRequest request) {
        return status(alive(host), request.getName());
    }

    @Override
    public VmStatus stopVm(HostRecord host, VmRequest request) {
        throw new AgentCallException(Status.Code.UNIMPLEMENTED, "simulated agents do not stop VMs", null);
    }

    @Override
    public VmStatus deleteVm(HostRecord host, VmRequest request) {
        throw new AgentCallException(Status.Code.UNIMPLEMENTED, "simulated agents do not delete VMs", null);
    }

    @Override
    public VmStatus getVm(HostRecord host, String vm) {
        return status(alive(host), vm);
    }

    @Override
    public List<VmStatus> listVms(HostRecord host) {
        Host h = alive(host);
        List<VmStatus> out = new ArrayList<>();
        for (String vm : h.vms.keySet()) {
            out.add(status(h, vm));
        }
        return out;
    }

    @Override
    public MigrationEvent migrate(HostRecord source, MigrateRequest request, Consumer<MigrationEvent> events) {
        throw new AgentCallException(Status.Code.UNIMPLEMENTED, "simulated agents do not migrate", null);
    }

    @Override
    public CancelMigrationResponse cancelMigration(HostRecord source, CancelMigrationRequest request) {
        throw new AgentCallException(Status.Code.UNIMPLEMENTED, "simulated agents do not migrate", null);
    }

    @Override
    public SetMigrationLimitsResponse setMigrationLimits(HostRecord source, SetMigrationLimitsRequest request) {
        throw new AgentCallException(Status.Code.UNIMPLEMENTED, "simulated agents do not migrate", null);
    }

    /** Simulated agents take every order: they stand for the coordinator's work, not the agents' checks. */
    @Override
    public LeaderTermResponse announceLeaderTerm(HostRecord host, LeaderTermRequest request) {
        alive(host);
        return LeaderTermResponse.newBuilder()
                .setNewestLeaderTerm(request.getLeaderTerm())
                .build();
    }

    @Override
    public void close() {
        for (Host h : hosts.values()) {
            try {
                h.zk.close();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
