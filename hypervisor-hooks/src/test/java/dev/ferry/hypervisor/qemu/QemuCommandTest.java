package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class QemuCommandTest {
    private static QemuCommand.Builder base() {
        return QemuCommand.builder()
                .name("vm1")
                .memoryBytes(128L << 20)
                .ramFile(Path.of("/dev/shm/ferry/vm1.ram"))
                .runDir(Path.of("/run/ferry/vm1"))
                .accel(Accel.TCG);
    }

    @Test
    void rendersADirectBootSourceWithTheHook() {
        QemuCommand c = base().vcpus(2)
                .kernel(Path.of("/boot/guest.elf"))
                .initrd(Path.of("/boot/initrd"))
                .append("console=ttyS0 rate=100")
                .disk(new QemuCommand.Disk(Path.of("/var/lib/ferry/root.qcow2"), QemuCommand.Disk.Format.QCOW2, false))
                .disk(new QemuCommand.Disk(Path.of("/var/lib/ferry/data.img"), QemuCommand.Disk.Format.RAW, true))
                .hookLibrary(Path.of("/usr/lib/ferry/libferryhook.so"))
                .build();
        assertEquals(
                List.of(
                        "qemu-system-x86_64",
                        "-name",
                        "guest=vm1",
                        "-machine",
                        "pc,memory-backend=ram0",
                        "-m",
                        "128M",
                        "-object",
                        "memory-backend-file,id=ram0,size=134217728,mem-path=/dev/shm/ferry/vm1.ram,share=on",
                        "-smp",
                        "2",
                        "-accel",
                        "tcg",
                        "-display",
                        "none",
                        "-nodefaults",
                        "-no-user-config",
                        "-msg",
                        "timestamp=on",
                        "-chardev",
                        "socket,id=console,path=/run/ferry/vm1/console.sock,server=on,wait=off,logfile=/run/ferry/vm1/console.log,logappend=on",
                        "-serial",
                        "chardev:console",
                        "-chardev",
                        "socket,id=qmp,path=/run/ferry/vm1/qmp.sock,server=on,wait=off",
                        "-mon",
                        "chardev=qmp,mode=control",
                        "-kernel",
                        "/boot/guest.elf",
                        "-initrd",
                        "/boot/initrd",
                        "-append",
                        "console=ttyS0 rate=100",
                        "-drive",
                        "file=/var/lib/ferry/root.qcow2,format=qcow2,if=virtio,cache=none,id=disk0",
                        "-drive",
                        "file=/var/lib/ferry/data.img,format=raw,if=virtio,cache=none,id=disk1,readonly=on"),
                c.argv());
        assertEquals(
                Map.of(
                        "LD_PRELOAD", "/usr/lib/ferry/libferryhook.so",
                        "FERRY_HOOK_RAM_PATH", "/dev/shm/ferry/vm1.ram",
                        "FERRY_HOOK_STATUS_FILE", "/run/ferry/vm1/hook.status"),
                c.environment());
    }

    @Test
    void aBootDiskIsTheFirmwaresFirstBootDeviceAndNoKernelIsGiven() {
        List<String> argv = base().cpuModel("Nehalem")
                .machine("pc-i440fx-7.2")
                .disk(new QemuCommand.Disk(
                        Path.of("/srv/images/boot.img"), QemuCommand.Disk.Format.RAW, false, "writeback", true))
                .disk(new QemuCommand.Disk(Path.of("/srv/images/data.qcow2"), QemuCommand.Disk.Format.QCOW2, true))
                .build()
                .argv();
        assertEquals("Nehalem", argv.get(argv.indexOf("-cpu") + 1));
        assertEquals("pc-i440fx-7.2,memory-backend=ram0", argv.get(argv.indexOf("-machine") + 1));
        assertTrue(!argv.contains("-kernel"), argv.toString());
        // The boot disk: a drive without a device of its own, and its virtio-blk device with bootindex.
        int boot = argv.indexOf("file=/srv/images/boot.img,format=raw,if=none,cache=writeback,id=disk0");
        assertTrue(boot > 0, argv.toString());
        assertEquals("-device", argv.get(boot + 1));
        assertEquals("virtio-blk-pci,drive=disk0,bootindex=1", argv.get(boot + 2));
        // Other disks stay plain virtio drives, exactly as before (a running VM's device layout).
        assertTrue(
                argv.contains("file=/srv/images/data.qcow2,format=qcow2,if=virtio,cache=none,id=disk1,readonly=on"),
                argv.toString());
        assertEquals(1, argv.stream().filter(a -> a.contains("bootindex")).count(), argv.toString());
    }

    @Test
    void aVmBootsEitherAKernelOrOneDisk() {
        QemuCommand.Disk boot =
                new QemuCommand.Disk(Path.of("/srv/images/a.img"), QemuCommand.Disk.Format.RAW, false, "none", true);
        assertThrows(
                IllegalArgumentException.class,
                () -> base().disk(boot).disk(boot).build());
        assertThrows(
                IllegalArgumentException.class,
                () -> base().kernel(Path.of("/boot/vmlinuz")).disk(boot).build());
    }

    @Test
    void aMigrationDestinationWaitsPausedForItsIncomingState() {
        List<String> argv =
                base().incoming(true).accel(Accel.KVM).cpuModel("host").build().argv();
        assertTrue(argv.containsAll(List.of("-incoming", "defer")), argv.toString());
        assertEquals("-S", argv.getLast());
        assertEquals("kvm", argv.get(argv.indexOf("-accel") + 1));
        assertEquals("host", argv.get(argv.indexOf("-cpu") + 1));
    }

    @Test
    void commasInPathsAreDoubledSoQemuDoesNotSplitTheOption() {
        QemuCommand c = base().ramFile(Path.of("/dev/shm/a,b.ram"))
                .runDir(Path.of("/run/x,y"))
                .hookLibrary(Path.of("/lib/h.so"))
                .build();
        assertTrue(c.argv().contains("memory-backend-file,id=ram0,size=134217728,mem-path=/dev/shm/a,,b.ram,share=on"));
        assertTrue(c.argv().contains("socket,id=qmp,path=/run/x,,y/qmp.sock,server=on,wait=off"));
        // The environment is not QEMU option syntax: the hook gets the path as it is.
        assertEquals("/dev/shm/a,b.ram", c.environment().get("FERRY_HOOK_RAM_PATH"));
    }

    @Test
    void withoutAHookNothingIsPreloadedAndStrayVariablesAreCleared() {
        QemuCommand c = base().build();
        assertTrue(c.environment().isEmpty());
        assertTrue(c.environmentToRemove()
                .containsAll(List.of("LD_PRELOAD", "FERRY_HOOK_RAM_PATH", "FERRY_HOOK_STATUS_FILE")));
    }

    @Test
    void autoAccelMustBeResolvedBeforeRendering() {
        QemuCommand c = base().accel(Accel.AUTO).build();
        assertThrows(IllegalStateException.class, c::argv);
        assertEquals(
                "tcg",
                c.withAccel(Accel.TCG).argv().get(c.withAccel(Accel.TCG).argv().indexOf("-accel") + 1));
    }

    @Test
    void refusesWhatQemuWouldRejectLaterAndLessClearly() {
        assertThrows(
                IllegalArgumentException.class,
                () -> base().memoryBytes((128L << 20) + 4096).build());
        assertThrows(IllegalArgumentException.class, () -> base().vcpus(0).build());
        assertThrows(
                IllegalArgumentException.class,
                () -> base().initrd(Path.of("/boot/initrd")).build());
        assertThrows(
                IllegalArgumentException.class,
                () -> base().machine("pc,accel=kvm").build());
        assertThrows(IllegalArgumentException.class, () -> base().name("a\nb").build());
        assertThrows(
                IllegalArgumentException.class,
                () -> base().runDir(Path.of("relative")).build());
        IllegalArgumentException e = assertThrows(
                IllegalArgumentException.class,
                () -> base().runDir(Path.of("/" + "d".repeat(100))).build());
        assertTrue(e.getMessage().contains("unix socket"), e.getMessage());
        assertThrows(
                IllegalArgumentException.class,
                () -> new QemuCommand.Disk(Path.of("/x"), QemuCommand.Disk.Format.RAW, false, "fast"));
    }

    @Test
    void accelDetectionFallsBackToTcgWithoutAUsableDevKvm() {
        Accel.Detection d = Accel.detect(Path.of("/nonexistent/kvm"), Accel.SYS_MODULE);
        assertEquals(Accel.TCG, d.accel());
        assertTrue(d.reason().contains("/nonexistent/kvm"), d.reason());
    }

    /**
     * Pins the failure where a /dev/kvm backed by PVM (kvm_pvm, no VT-x) was taken for KVM: every
     * QEMU test guest stopped at once with "KVM internal error ... emulation failure".
     */
    @Test
    void aDevKvmBackedByPvmIsNotKvmForOrdinaryGuests(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path devKvm = dir.resolve("kvm");
        java.nio.file.Files.createFile(devKvm);
        Path modules = dir.resolve("module");
        java.nio.file.Files.createDirectories(modules.resolve("kvm"));
        java.nio.file.Files.createDirectories(modules.resolve("kvm_pvm"));
        Accel.Detection pvm = Accel.detect(devKvm, modules);
        assertEquals(Accel.TCG, pvm.accel());
        assertTrue(pvm.reason().contains("kvm_pvm"), pvm.reason());

        java.nio.file.Files.createDirectories(modules.resolve("kvm_intel"));
        assertEquals(Accel.KVM, Accel.detect(devKvm, modules).accel(), "hardware KVM next to PVM is KVM");
        java.nio.file.Files.delete(modules.resolve("kvm_pvm"));
        assertEquals(Accel.KVM, Accel.detect(devKvm, modules).accel());
    }

    @Test
    void rendersEachNicAsATapNetdevAndADeviceWithItsMac() {
        QemuCommand c = base().nic(new QemuCommand.Nic("ft525400a1b2c3", "52:54:00:a1:b2:c3", "virtio-net-pci"))
                .nic(new QemuCommand.Nic("ft525400000001", "52:54:00:00:00:01", "e1000"))
                .incoming(true)
                .build();
        List<String> argv = c.argv();
        int at = argv.indexOf("-netdev");
        assertEquals(
                List.of(
                        "-netdev",
                        "tap,id=net0,ifname=ft525400a1b2c3,script=no,downscript=no",
                        "-device",
                        "virtio-net-pci,netdev=net0,mac=52:54:00:a1:b2:c3,guest_announce=off",
                        "-netdev",
                        "tap,id=net1,ifname=ft525400000001,script=no,downscript=no",
                        "-device",
                        "e1000,netdev=net1,mac=52:54:00:00:00:01",
                        "-incoming",
                        "defer"),
                argv.subList(at, at + 10));
        assertEquals(c.nics(), c.toBuilder().build().nics());
    }

    @Test
    void refusesATapNameLongerThanIfnamsizOrABadMac() {
        assertThrows(
                IllegalArgumentException.class,
                () -> new QemuCommand.Nic("ft525400a1b2c3xx", "52:54:00:a1:b2:c3", "virtio-net-pci"));
        assertThrows(
                IllegalArgumentException.class, () -> new QemuCommand.Nic("ft1", "52:54:00:a1:b2", "virtio-net-pci"));
        assertThrows(IllegalArgumentException.class, () -> new QemuCommand.Nic("ft1", "52:54:00:a1:b2:c3", "rtl8139"));
    }
}
