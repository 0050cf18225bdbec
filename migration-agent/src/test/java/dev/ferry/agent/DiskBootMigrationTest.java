package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.qemu.BootSector;
import dev.ferry.hypervisor.qemu.QemuDriver;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.hypervisor.storage.StorageRoots;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.vm.Disk;
import dev.ferry.proto.vm.DiskFormat;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.testing.Timing;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A guest that boots from a disk image through the firmware (SeaBIOS), not from a kernel file:
 * a hand-assembled boot sector ({@link BootSector}) on a raw image under a storage root, with the
 * baseline CPU model and a pinned machine type, moved live by Ferry's pre-copy. Its console goes
 * on counting on the destination from where the source left off.
 */
class DiskBootMigrationTest {
    @TempDir
    Path tmp;

    private AgentPair pair;

    @BeforeEach
    void start() throws Exception {
        QemuTestSupport.requireQemu();
        QemuTestSupport.requireDirtyTracking();
        Path images = Files.createDirectories(tmp.resolve("images"));
        BootSector.writeImage(images.resolve("boot.img"));
        pair = AgentPair.qemu(QemuDriver.Settings.defaults().withStorageRoots(StorageRoots.of(images)));
    }

    @AfterEach
    void stop() throws Exception {
        if (pair != null) {
            pair.close();
            assertEquals(List.of(), AgentPair.processesUsing(pair.root), "no QEMU may outlive its agent");
        }
    }

    private String console(Agent agent, String vm) {
        Path log = pair.root
                .resolve(agent.hostId() + "-data")
                .resolve("vms")
                .resolve(vm)
                .resolve("console.log");
        try {
            return Files.exists(log) ? Files.readString(log, StandardCharsets.US_ASCII) : "";
        } catch (IOException e) {
            return "";
        }
    }

    @Test
    void aGuestBootedFromADiskByTheFirmwareMovesLiveAndGoesOnCounting() throws Exception {
        VmSpec spec = VmSpec.newBuilder()
                .setSchemaVersion(1)
                .setName("diskboot")
                .setMemoryBytes(32L << 20)
                .setVcpus(1)
                .setMachine("pc-i440fx-7.2")
                .setCpuModel("Nehalem")
                .addDisks(Disk.newBuilder()
                        .setPath(tmp.resolve("images").resolve("boot.img").toString())
                        .setFormat(DiskFormat.DISK_FORMAT_RAW)
                        .setCache("none")
                        .setBoot(true))
                .build();
        pair.createRunning(spec);
        Timing.await(
                "the boot sector's lines on the source's console",
                Duration.ofSeconds(60),
                () -> BootSector.lastLine(console(pair.a, "diskboot")) >= 2);
        assertTrue(console(pair.a, "diskboot").startsWith(BootSector.TEXT + "0000"), console(pair.a, "diskboot"));

        MigrationSummary s = pair.clientA
                .migrate(
                        MigrateRequest.newBuilder()
                                .setVm("diskboot")
                                .setTargetHost("host-b")
                                .setTargetEndpoint(pair.b.endpoint().toString())
                                .setOptions(MigrationOptions.newBuilder().setVerify(true))
                                .build(),
                        e -> {})
                .getSummary();
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, s.getStatus(), s.toString());
        int lastOnSource = BootSector.lastLine(console(pair.a, "diskboot"));
        assertEquals(VmState.VM_STATE_RUNNING, pair.clientB.getVm("diskboot").getState());

        // The destination's QEMU never ran the firmware: its first line goes on from the source's
        // counter (CPU state that crossed), never from 0000.
        Timing.await(
                "the guest's lines on the destination's console",
                Duration.ofSeconds(60),
                () -> BootSector.lastLine(console(pair.b, "diskboot")) > lastOnSource);
        String there = console(pair.b, "diskboot");
        assertTrue(!there.contains(BootSector.TEXT + "0000"), there);
        int first = Integer.parseInt(
                there.substring(there.indexOf(BootSector.TEXT) + BootSector.TEXT.length())
                        .substring(0, 4),
                16);
        assertTrue(first >= lastOnSource, "first line there " + first + ", last here " + lastOnSource);
    }
}
