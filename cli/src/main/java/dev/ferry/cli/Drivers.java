package dev.ferry.cli;

import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.qemu.QemuDriver;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.hypervisor.storage.StorageRoots;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Builds the hypervisor driver an agent runs with. */
final class Drivers {
    private Drivers() {}

    /** Refuses an unknown driver name before anything is started. */
    static void checkName(String name) {
        if (!name.equals("sim") && !name.equals("qemu")) {
            throw new CliException("unknown driver '" + name + "': use sim or qemu", 2);
        }
    }

    /**
     * The storage roots of an agent: those given, each an existing directory (a typo must not
     * leave the agent admitting nothing, or silently something else); without any, DATA-DIR/images
     * and {@link StorageRoots#SYSTEM}, neither of which the agent writes (its run directories are
     * DATA-DIR/vms), so every file in them is one an operator put there.
     */
    static StorageRoots storageRoots(List<Path> given, Path dataDir) {
        if (given.isEmpty()) {
            List<Path> defaults = new ArrayList<>(List.of(dataDir.resolve("images")));
            if (!defaults.contains(StorageRoots.SYSTEM)) {
                defaults.add(StorageRoots.SYSTEM);
            }
            return new StorageRoots(defaults);
        }
        List<Path> roots = new ArrayList<>();
        for (Path g : given) {
            Path root = g.toAbsolutePath().normalize();
            if (!Files.isDirectory(root)) {
                throw new CliException("--storage-root " + g + " is not a directory", 2);
            }
            if (root.getNameCount() == 0) {
                throw new CliException(
                        "--storage-root / would let any VM spec name any file of this host (/dev/sda, keys): "
                                + "give the directories that hold VM images",
                        2);
            }
            roots.add(root);
        }
        return new StorageRoots(roots);
    }

    static HypervisorDriver create(
            String name, Path dataDir, StorageRoots roots, Path qemuBinary, QemuDriver.Announce announce) {
        return switch (name) {
            case "sim" -> new SimDriver();
            case "qemu" -> {
                try {
                    yield QemuDriver.create(
                            QemuDriver.Settings.defaults()
                                    .withStorageRoots(roots)
                                    .withBinary(qemuBinary)
                                    .withAnnounce(announce),
                            dataDir.resolve("native"));
                } catch (HypervisorException e) {
                    throw new CliException(e.getMessage());
                }
            }
            default -> throw new CliException("unknown driver '" + name + "': use sim or qemu", 2);
        };
    }
}
