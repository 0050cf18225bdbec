package dev.ferry.chaos.nemesis;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.proto.cluster.VmRecord;
import org.apache.curator.framework.CuratorFramework;

/**
 * I2's negative control, run as a process on the control host (the runner's JVM cannot reach the
 * cluster's namespaces): moves a VM's record to another owner at epoch + 1 behind the cluster's
 * back, version-checked, as a bug that let a failed migration change ownership would. Arguments:
 * those of {@link dev.ferry.chaos.history.ControlTool}, then VM NEW-OWNER. Prints the record it
 * wrote.
 */
public final class SlipOwnership {
    private SlipOwnership() {}

    public static void main(String[] args) throws Exception {
        ZkClients zk = dev.ferry.chaos.history.ControlTool.zk(args);
        try (CuratorFramework c = zk.retrying()) {
            c.start();
            if (!c.blockUntilConnected(30, java.util.concurrent.TimeUnit.SECONDS)) {
                System.err.println("no ZooKeeper");
                System.exit(1);
            }
            ClusterStore store = new ClusterStore(c);
            Versioned<VmRecord> v = store.vm(args[5]).orElseThrow();
            VmRecord moved = v.value().toBuilder()
                    .setOwner(args[6])
                    .setEpoch(v.value().getEpoch() + 1)
                    .build();
            store.commit(store.set(ClusterPaths.vm(args[5]), moved, v.version()));
            System.out.println("owner=" + moved.getOwner() + " epoch=" + moved.getEpoch());
        }
    }
}
