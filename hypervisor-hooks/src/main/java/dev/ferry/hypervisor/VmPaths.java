package dev.ferry.hypervisor;

import java.nio.file.Path;

/**
 * Where one VM's files live on this host.
 *
 * @param runDir private directory for sockets, logs and state files (mode 0700)
 * @param ramFile the guest RAM file, on tmpfs so that the hypervisor and the agent share it
 * @param leaseFile the guest's lease ({@link dev.ferry.hypervisor.lease.LeaseFile}), which the
 *     agent wrote before handing these paths to the driver; null where no lease applies (a
 *     standalone agent, outside a cluster): the guest then runs until it is stopped
 */
public record VmPaths(Path runDir, Path ramFile, Path leaseFile) {
    public VmPaths(Path runDir, Path ramFile) {
        this(runDir, ramFile, null);
    }
}
