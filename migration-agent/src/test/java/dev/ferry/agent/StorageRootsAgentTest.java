package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.hypervisor.qemu.QemuDriver;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.hypervisor.storage.StorageRoots;
import dev.ferry.proto.agent.CreateVmRequest;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.proto.vm.DirectBoot;
import dev.ferry.proto.vm.Disk;
import dev.ferry.proto.vm.DiskFormat;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.rpc.Transport;
import io.grpc.Status;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 10's attack on real agents with the QEMU driver: a spec that names a host device or a
 * file outside the storage roots, by CreateVm or by PrepareIncoming, is refused with
 * INVALID_ARGUMENT before any QEMU, RAM file or run directory exists.
 */
class StorageRootsAgentTest {
    @TempDir
    Path tmp;

    private Path images;
    private Path hostFile;
    private AgentPair pair;

    @BeforeEach
    void setUp() throws Exception {
        QemuTestSupport.requireQemu();
        images = Files.createDirectories(tmp.resolve("images"));
        hostFile = Files.write(tmp.resolve("host-secret.img"), new byte[1 << 20]);
        StorageRoots roots = StorageRoots.of(images);
        pair = new AgentPair(
                Transport.plaintext(),
                dir -> QemuDriver.create(QemuDriver.Settings.defaults().withStorageRoots(roots), dir));
    }

    @AfterEach
    void tearDown() throws Exception {
        if (pair != null) {
            pair.close();
        }
    }

    private static VmSpec withDisk(String name, String path) {
        return AgentPair.busyGuest(name, 32L << 20, 0).toBuilder()
                .addDisks(Disk.newBuilder().setPath(path).setFormat(DiskFormat.DISK_FORMAT_RAW))
                .build();
    }

    private void assertNothingStartedOn(Agent agent) throws Exception {
        assertEquals(0, pair.runDirs(agent), "no run directory");
        assertEquals(0, pair.ramFiles(agent), "no RAM file");
        assertEquals(java.util.List.of(), AgentPair.processesUsing(pair.root), "no QEMU");
    }

    @Test
    void aCreateVmWhoseDiskIsAHostDeviceIsRefusedAndStartsNothing() throws Exception {
        // /dev/null stands in for /dev/sda: a device every host has, harmless if the check failed.
        AgentCallException e = assertThrows(
                AgentCallException.class,
                () -> pair.clientA.createVm(CreateVmRequest.newBuilder()
                        .setSpec(withDisk("dev", "/dev/null"))
                        .setStart(true)
                        .build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.code());
        assertTrue(
                e.getMessage().contains("disk /dev/null is not a regular file under a storage root (" + images + ")"),
                e.getMessage());
        assertEquals(0, pair.clientA.listVms().size());
        assertNothingStartedOn(pair.a);
    }

    @Test
    void aPrepareIncomingWhoseDiskIsOutsideTheRootsIsRefusedAndLeavesNothing() throws Exception {
        AgentCallException e = assertThrows(
                AgentCallException.class,
                () -> pair.clientB.prepareIncoming(PrepareIncomingRequest.newBuilder()
                        .setMigrationId("m-steal")
                        .setSpec(withDisk("arriving", hostFile.toString()))
                        .setSourceHost("host-a")
                        .setMode(TransferMode.TRANSFER_MODE_PRECOPY)
                        .setEpoch(1)
                        .build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.code());
        assertTrue(
                e.getMessage().contains("disk " + hostFile + " is not a regular file under a storage root"),
                e.getMessage());
        assertEquals(0, pair.clientB.listVms().size());
        assertNothingStartedOn(pair.b);
    }

    @Test
    void aKernelSymlinkedFromTheRootToAHostFileIsRefused() throws Exception {
        Path link = Files.createSymbolicLink(images.resolve("vmlinuz"), hostFile);
        VmSpec spec = AgentPair.busyGuest("k", 32L << 20, 0).toBuilder()
                .setBoot(DirectBoot.newBuilder().setKernel(link.toString()))
                .build();
        AgentCallException e = assertThrows(
                AgentCallException.class,
                () -> pair.clientA.createVm(CreateVmRequest.newBuilder()
                        .setSpec(spec)
                        .setStart(true)
                        .build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().contains("it resolves to " + hostFile.toRealPath()), e.getMessage());
        assertNothingStartedOn(pair.a);
    }

    @Test
    void aDiskInTheRootSwappedForASymlinkAfterCreateIsRefusedAtStart() throws Exception {
        Path disk = Files.write(images.resolve("root.img"), new byte[1 << 20]);
        pair.clientA.createVm(CreateVmRequest.newBuilder()
                .setSpec(withDisk("swap", disk.toString()))
                .setStart(false)
                .build());

        Path link = Files.createSymbolicLink(images.resolve("swap.tmp"), hostFile);
        Files.move(link, disk, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        AgentCallException e = assertThrows(AgentCallException.class, () -> pair.clientA.startVm("swap"));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.code());
        assertTrue(e.getMessage().contains("it resolves to " + hostFile.toRealPath()), e.getMessage());
        assertEquals(java.util.List.of(), AgentPair.processesUsing(pair.root), "no QEMU");
    }

    @Test
    void aDiskUnderTheRootReachesQemu() throws Exception {
        Path disk = Files.write(images.resolve("data.img"), new byte[1 << 20]);
        pair.clientA.createVm(CreateVmRequest.newBuilder()
                .setSpec(withDisk("ok", disk.toString()))
                .setStart(true)
                .build());
        assertEquals(VmState.VM_STATE_RUNNING, pair.clientA.getVm("ok").getState());
        java.util.List<Long> qemus = AgentPair.processesUsing(pair.root);
        assertEquals(1, qemus.size());
        String cmdline = Files.readString(Path.of("/proc", qemus.getFirst().toString(), "cmdline"));
        assertTrue(cmdline.contains("file=" + disk), cmdline);
    }
}
