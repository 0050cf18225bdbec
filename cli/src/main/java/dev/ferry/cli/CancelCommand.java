package dev.ferry.cli;

import dev.ferry.cluster.client.CoordinatorClient;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

@Command(name = "cancel", description = "Cancel a VM's running migration; the VM keeps running on its source.")
final class CancelCommand implements java.util.concurrent.Callable<Integer> {
    @Mixin
    ClusterOption cluster;

    @Parameters(index = "0", paramLabel = "VM")
    String vm;

    @Override
    public Integer call() {
        try (CoordinatorClient c = cluster.client()) {
            var r = c.cancelMigration(vm);
            System.out.println(r.getMessage());
            return r.getCancelled() ? 0 : 1;
        }
    }
}
