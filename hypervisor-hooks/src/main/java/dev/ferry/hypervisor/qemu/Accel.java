package dev.ferry.hypervisor.qemu;

import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.hypervisor.linux.LinuxException;
import java.nio.file.Files;
import java.nio.file.Path;

/** How QEMU runs guest code: KVM where the host offers it, TCG (emulation) otherwise. */
public enum Accel {
    /**
     * Decide at start: KVM when /dev/kvm opens read-write and is backed by hardware virtualization
     * (kvm_intel or kvm_amd), else TCG.
     */
    AUTO,
    KVM,
    TCG;

    static final Path DEV_KVM = Path.of("/dev/kvm");
    static final Path SYS_MODULE = Path.of("/sys/module");

    /** The accelerator this host offers now; never {@link #AUTO}. */
    public static Detection detect() {
        return detect(DEV_KVM, SYS_MODULE);
    }

    static Detection detect(Path devKvm, Path sysModule) {
        try {
            int fd = Linux.open(devKvm.toString(), Linux.O_RDWR | Linux.O_CLOEXEC);
            Linux.close(fd);
        } catch (LinuxException e) {
            // Existing but not openable (no permission, module not loaded) is as good as absent: QEMU
            // would fail the same way, later and less clearly.
            return new Detection(TCG, devKvm + " unusable (" + e.getMessage() + "), using TCG emulation");
        }
        // A /dev/kvm backed by PVM (kvm_pvm: KVM without VT-x/AMD-V, as inside some cloud VMs) runs
        // only PVM-aware 64-bit guest kernels; any other guest stops at its first privileged
        // instruction with "KVM internal error ... emulation failure", which QEMU reports as a pause.
        boolean hardware =
                Files.isDirectory(sysModule.resolve("kvm_intel")) || Files.isDirectory(sysModule.resolve("kvm_amd"));
        if (!hardware && Files.isDirectory(sysModule.resolve("kvm_pvm"))) {
            return new Detection(
                    TCG,
                    devKvm + " is backed by kvm_pvm (no hardware virtualization), which runs only "
                            + "PVM-aware guest kernels; using TCG emulation");
        }
        return new Detection(KVM, devKvm + " opens read-write");
    }

    /** The accelerator chosen and why. */
    public record Detection(Accel accel, String reason) {}

    /** The {@code -accel} value. */
    String qemuName() {
        return switch (this) {
            case KVM -> "kvm";
            case TCG -> "tcg";
            case AUTO -> throw new IllegalStateException("AUTO must be resolved before rendering the command line");
        };
    }
}
