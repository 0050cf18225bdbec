package dev.ferry.chaos.history;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;

/**
 * Prints the run locks in ZooKeeper of the VMs whose names start with PREFIX, one per line: "VM
 * HOST EPOCH" (for I5: a run lock is the cluster's own word that a copy runs somewhere). Run on
 * the control host through {@link ControlTool}; arguments: its five, then PREFIX.
 */
public final class RunLocks {
    private RunLocks() {}

    public static void main(String[] args) throws Exception {
        String prefix = args[5];
        try (CuratorFramework c = ControlTool.zk(args).retrying()) {
            c.start();
            if (!c.blockUntilConnected(30, TimeUnit.SECONDS)) {
                // thrown, not System.exit: the tool also runs inside the control shell
                throw new IllegalStateException("no ZooKeeper within 30 s");
            }
            ClusterStore store = new ClusterStore(c);
            for (String vm : store.children(ClusterPaths.RUNNING)) {
                if (!vm.startsWith(prefix)) {
                    continue;
                }
                store.running(vm)
                        .ifPresent(l -> System.out.println(vm + " " + l.value().getHostId() + " "
                                + l.value().getEpoch()));
            }
        }
    }
}
