package dev.ferry.cluster.coordinator;

import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.qemu.QemuDriver;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.proto.vm.HaPolicy;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import java.nio.file.Path;

/**
 * {@link ClusterCommitPhaseTest} with real QEMU guests (the Ferry test guest under its lease, TCG
 * here) on both hosts: every commit-phase row of the cluster's table, on the real hypervisor.
 */
class QemuClusterCommitPhaseTest extends ClusterCommitPhaseTest {
    @Override
    VmSpec spec(String name) {
        return VmSpec.newBuilder()
                .setSchemaVersion(1)
                .setName(name)
                .setMemoryBytes(64L << 20)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder()
                        .setDirtyRatePagesPerSec(1000)
                        .setWorkingSetBytes(8L << 20)
                        .setPattern(Pattern.PATTERN_RANDOM))
                .setHa(HaPolicy.newBuilder().setMaxRestartAttempts(3))
                .build();
    }

    @Override
    HypervisorDriver driver(String host, Path hostDir) throws Exception {
        QemuTestSupport.requireQemu();
        QemuTestSupport.requireDirtyTracking();
        return QemuDriver.create(QemuDriver.Settings.defaults(), hostDir);
    }
}
