package dev.ferry.cli;

import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.qemu.QemuDriver;
import dev.ferry.hypervisor.sim.SimDriver;
import java.nio.file.Path;

/** Builds the hypervisor driver an agent runs with. */
final class Drivers {
    private Drivers() {}

    /** Refuses an unknown driver name before anything is started. */
    static void checkName(String name) {
        if (!name.equals("sim") && !name.equals("qemu")) {
            throw new CliException("unknown driver '" + name + "': use sim or qemu", 2);
        }
    }

    static HypervisorDriver create(String name, Path dataDir) {
        return switch (name) {
            case "sim" -> new SimDriver();
            case "qemu" -> {
                try {
                    yield QemuDriver.create(QemuDriver.Settings.defaults(), dataDir.resolve("native"));
                } catch (HypervisorException e) {
                    throw new CliException(e.getMessage());
                }
            }
            default -> throw new CliException("unknown driver '" + name + "': use sim or qemu", 2);
        };
    }
}
