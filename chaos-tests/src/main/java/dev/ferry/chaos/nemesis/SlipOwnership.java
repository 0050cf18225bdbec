package dev.ferry.chaos.nemesis;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.cluster.store.ZkSecurity;
import dev.ferry.pki.Credentials;
import dev.ferry.proto.cluster.VmRecord;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import org.apache.curator.framework.CuratorFramework;

/**
 * I2's negative control, run as a process on the control host (the runner's JVM cannot reach the
 * cluster's namespaces): moves a VM's record to another owner at epoch + 1 behind the cluster's
 * back, version-checked, as a bug that let a failed migration change ownership would. Arguments:
 * ZK-CONNECT CLUSTER-NAME VM NEW-OWNER CERT KEY CA (a coordinator's certificate: the ensemble
 * speaks only TLS to cluster identities). Prints the record it wrote.
 */
public final class SlipOwnership {
    private SlipOwnership() {}

    public static void main(String[] args) throws Exception {
        Credentials creds = Credentials.load(Path.of(args[4]), Path.of(args[5]), Path.of(args[6]), Clock.systemUTC());
        ZkClients zk = ZkClients.of(args[0], args[1], Duration.ofSeconds(10), ZkSecurity.x509(creds));
        try (CuratorFramework c = zk.retrying()) {
            c.start();
            if (!c.blockUntilConnected(30, java.util.concurrent.TimeUnit.SECONDS)) {
                System.err.println("no ZooKeeper");
                System.exit(1);
            }
            ClusterStore store = new ClusterStore(c);
            Versioned<VmRecord> v = store.vm(args[2]).orElseThrow();
            VmRecord moved = v.value().toBuilder()
                    .setOwner(args[3])
                    .setEpoch(v.value().getEpoch() + 1)
                    .build();
            store.commit(store.set(ClusterPaths.vm(args[2]), moved, v.version()));
            System.out.println("owner=" + moved.getOwner() + " epoch=" + moved.getEpoch());
        }
    }
}
