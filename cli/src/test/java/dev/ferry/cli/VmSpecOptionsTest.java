package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.proto.vm.VmSpec;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** `ferry vm create`: what --cpu, --disk FILE,boot,cache=... and --boot disk put in the spec. */
class VmSpecOptionsTest {
    private static VmSpec spec(String... args) {
        VmCommand.Create c = new VmCommand.Create();
        new CommandLine(c).parseArgs(args);
        return c.spec();
    }

    @Test
    void theDiskMarkedBootBootsAndItsCacheModeAndFormatAreRecorded() {
        VmSpec s =
                spec("g", "--memory", "64M", "--disk", "/img/data.img", "--disk", "/img/root.img,boot,cache=writeback");
        assertEquals(false, s.getDisks(0).getBoot());
        assertEquals("none", s.getDisks(0).getCache(), "cache=none is written down, not left implicit");
        assertEquals(true, s.getDisks(1).getBoot());
        assertEquals("writeback", s.getDisks(1).getCache());
        assertEquals("DISK_FORMAT_RAW", s.getDisks(1).getFormat().name());
        assertTrue(s.getCpuModel().isEmpty(), "the coordinator records the cluster's baseline");
    }

    @Test
    void bootDiskMarksTheFirstDisk() {
        VmSpec s = spec("g", "--memory", "64M", "--boot", "disk", "--disk", "/img/root.qcow2,format=qcow2");
        assertTrue(s.getDisks(0).getBoot());
        assertTrue(!s.hasBoot(), "no kernel");
    }

    @Test
    void theCpuModelIsRecorded() {
        assertEquals(
                "Westmere", spec("g", "--memory", "64M", "--cpu", "Westmere").getCpuModel());
    }

    @Test
    void contradictoryBootOptionsAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> spec("g", "--memory", "64M", "--boot", "disk"));
        assertThrows(
                IllegalArgumentException.class,
                () -> spec("g", "--memory", "64M", "--kernel", "/boot/vmlinuz", "--disk", "/img/a.img,boot"));
        assertThrows(
                IllegalArgumentException.class,
                () -> spec("g", "--memory", "64M", "--disk", "/img/a.img,boot", "--disk", "/img/b.img,boot"));
        assertThrows(
                IllegalArgumentException.class, () -> spec("g", "--memory", "64M", "--disk", "/img/a.img,cache=fast"));
        assertThrows(IllegalArgumentException.class, () -> spec("g", "--memory", "64M", "--cpu", "host"));
        assertThrows(IllegalArgumentException.class, () -> spec("g", "--memory", "64M", "--boot", "floppy"));
    }
}
