package dev.ferry.hypervisor.qemu;

import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.hypervisor.linux.LinuxException;
import java.nio.file.Path;

/** How QEMU runs guest code: KVM where the host offers it, TCG (emulation) otherwise. */
public enum Accel {
  /** Decide at start: KVM when /dev/kvm opens read-write, else TCG. */
  AUTO,
  KVM,
  TCG;

  static final Path DEV_KVM = Path.of("/dev/kvm");

  /** The accelerator this host offers now; never {@link #AUTO}. */
  public static Detection detect() {
    return detect(DEV_KVM);
  }

  static Detection detect(Path devKvm) {
    try {
      int fd = Linux.open(devKvm.toString(), Linux.O_RDWR | Linux.O_CLOEXEC);
      Linux.close(fd);
      return new Detection(KVM, devKvm + " opens read-write");
    } catch (LinuxException e) {
      // Existing but not openable (no permission, module not loaded) is as good as absent: QEMU
      // would fail the same way, later and less clearly.
      return new Detection(TCG, devKvm + " unusable (" + e.getMessage() + "), using TCG emulation");
    }
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
