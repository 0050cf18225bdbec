package dev.ferry.cli;

import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.sim.SimDriver;
import java.nio.file.Path;

/** Builds the hypervisor driver an agent runs with. */
final class Drivers {
  private Drivers() {}

  static HypervisorDriver create(String name, Path dataDir) {
    return switch (name) {
      case "sim" -> new SimDriver();
      case "qemu" -> throw new CliException("the qemu driver is not part of this build yet", 2);
      default -> throw new CliException("unknown driver '" + name + "': use sim or qemu", 2);
    };
  }
}
