package dev.ferry.hypervisor;

import java.nio.file.Path;

/**
 * Where one VM's files live on this host.
 *
 * @param runDir private directory for sockets, logs and state files (mode 0700)
 * @param ramFile the guest RAM file, on tmpfs so that the hypervisor and the agent share it
 */
public record VmPaths(Path runDir, Path ramFile) {}
