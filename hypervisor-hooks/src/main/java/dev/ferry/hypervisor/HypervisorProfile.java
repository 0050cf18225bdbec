package dev.ferry.hypervisor;

import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * What a host's hypervisor can run, as its agent registers it: the version, the accelerator, the
 * machine types (versioned names and aliases), what each alias stands for here, and the CPU models
 * it runs with every feature present under that accelerator. The cluster compares these with a
 * VM's spec before it places or migrates the VM (dev.ferry.cluster.policy.Compatibility).
 */
public record HypervisorProfile(
        String version,
        String accelerator,
        List<String> machineTypes,
        Map<String, String> machineAliases,
        List<String> cpuModels) {
    /** What a sim host records: the sim driver runs any spec and ignores CPU models and machines. */
    public static final String SIM = "sim";

    public HypervisorProfile {
        Objects.requireNonNull(version, "version");
        Objects.requireNonNull(accelerator, "accelerator");
        machineTypes = List.copyOf(machineTypes);
        machineAliases = Map.copyOf(machineAliases);
        cpuModels = List.copyOf(cpuModels);
    }

    public static HypervisorProfile sim() {
        return new HypervisorProfile(SIM, SIM, List.of(), Map.of(), List.of());
    }
}
