package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.InstanceState;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.hypervisor.storage.StorageRefusedException;
import dev.ferry.hypervisor.storage.StorageRoots;
import dev.ferry.proto.vm.Disk;
import dev.ferry.proto.vm.DiskFormat;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.testing.TestDirs;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The time-of-use half of the storage-root check: QEMU is not started on a file swapped after validation. */
class QemuStorageRootsTest {
    private Path dir;
    private Path images;
    private QemuDriver driver;

    @BeforeEach
    void setUp() throws Exception {
        Path natives = QemuTestSupport.requireNative();
        dir = TestDirs.ramDir("storage-roots");
        images = Files.createDirectories(dir.resolve("images"));
        driver = QemuDriver.create(QemuDriver.Settings.defaults().withStorageRoots(StorageRoots.of(images)), natives);
    }

    @AfterEach
    void tearDown() throws Exception {
        TestDirs.deleteTree(dir);
    }

    @Test
    void aDiskSwappedForASymlinkToTheHostBetweenCreateAndStartIsNotGivenToQemu() throws Exception {
        Path disk = Files.write(images.resolve("root.img"), new byte[1 << 20]);
        Path hostFile = Files.write(dir.resolve("host.img"), new byte[1 << 20]);
        VmSpec spec = VmSpec.newBuilder()
                .setName("swapped")
                .setMemoryBytes(32L << 20)
                .setVcpus(1)
                .addDisks(Disk.newBuilder().setPath(disk.toString()).setFormat(DiskFormat.DISK_FORMAT_RAW))
                .build();
        VmInstance vm = driver.create(spec, new VmPaths(dir.resolve("run"), dir.resolve("swapped.ram")));
        try {
            Path link = Files.createSymbolicLink(images.resolve("swap.tmp"), hostFile);
            Files.move(link, disk, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);

            HypervisorException e = assertThrows(HypervisorException.class, vm::start);
            assertEquals("launch QEMU", e.step());
            assertInstanceOf(StorageRefusedException.class, e.getCause());
            assertTrue(e.getMessage().contains("it resolves to " + hostFile.toRealPath()), e.getMessage());
            assertEquals(InstanceState.CREATED, vm.state(), "no QEMU was started");
        } finally {
            vm.close();
        }
    }
}
