package dev.ferry.hypervisor.sim;

import dev.ferry.hypervisor.HostCapabilities;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.InstanceState;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.hypervisor.memory.RamFile;
import dev.ferry.proto.vm.VmSpec;

/**
 * The test and demo double of a hypervisor, like libvirt's test driver: guests are threads
 * writing into real RAM files on tmpfs, with their own write tracking. Nothing in Ferry may depend
 * on it being the driver.
 */
public final class SimDriver implements HypervisorDriver {
    @Override
    public String name() {
        return "sim";
    }

    @Override
    public HostCapabilities capabilities() {
        return new HostCapabilities(true, "sim guest tracks its own writes", false);
    }

    @Override
    public void validate(VmSpec spec) throws HypervisorException {
        if (spec.hasBoot() && !spec.getBoot().getKernel().isEmpty()) {
            throw new HypervisorException("validate", "the sim driver cannot boot a kernel; use --driver qemu");
        }
        if (spec.getDisksCount() > 0) {
            throw new HypervisorException("validate", "the sim driver has no disks; use --driver qemu");
        }
        if (spec.getMemoryBytes() < 4L * RamFile.PAGE_SIZE || spec.getMemoryBytes() % RamFile.PAGE_SIZE != 0) {
            throw new HypervisorException(
                    "validate", "memory must be a multiple of 4 KiB and at least 16 KiB, got " + spec.getMemoryBytes());
        }
    }

    @Override
    public VmInstance create(VmSpec spec, VmPaths paths) throws HypervisorException {
        validate(spec);
        RamFile ram = RamFile.create(paths.ramFile(), spec.getMemoryBytes());
        SimVm vm;
        try {
            vm = new SimVm(spec, ram, InstanceState.CREATED, paths.leaseFile(), paths.runDir());
        } catch (HypervisorException e) {
            ram.close();
            throw e;
        }
        try {
            vm.fill();
        } catch (HypervisorException e) {
            vm.close();
            throw e;
        }
        return vm;
    }

    @Override
    public VmInstance prepareIncoming(VmSpec spec, VmPaths paths, IncomingKind kind) throws HypervisorException {
        validate(spec);
        if (kind != IncomingKind.PRECOPY) {
            throw new HypervisorException(
                    "prepare incoming", "the sim driver has no hypervisor-native migration stream; use pre-copy");
        }
        RamFile ram = RamFile.create(paths.ramFile(), spec.getMemoryBytes());
        try {
            return new SimVm(spec, ram, InstanceState.INCOMING, paths.leaseFile(), paths.runDir());
        } catch (HypervisorException e) {
            ram.close();
            throw e;
        }
    }

    @Override
    public void close() {}
}
