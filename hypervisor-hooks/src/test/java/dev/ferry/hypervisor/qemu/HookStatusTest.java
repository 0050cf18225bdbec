package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class HookStatusTest {
    @Test
    void parsesTheRegisteredMapping() {
        HookStatus s = HookStatus.parse("status=ok pid=12074 start=0x7f065ffff000 length=134217728 offset=0 uffd=9 "
                + "features=0x1ffff elapsed_us=468\n");
        assertEquals(HookStatus.Kind.OK, s.kind());
        assertEquals(12074, s.pid());
        assertEquals(0x7f065ffff000L, s.start());
        assertEquals(128L << 20, s.length());
        assertEquals(0, s.offset());
    }

    @Test
    void parsesAFailureWithAMessageOfSeveralWords() {
        HookStatus s = HookStatus.parse("status=error step=UFFDIO_API errno=22 start=0x7f0000000000 length=4096 "
                + "message=Invalid argument: kernel too old\n");
        assertEquals(HookStatus.Kind.ERROR, s.kind());
        assertEquals("UFFDIO_API", s.step());
        assertEquals(22, s.errno());
        assertEquals("Invalid argument: kernel too old", s.message());
    }

    @Test
    void parsesTheLoadedLine() {
        HookStatus s = HookStatus.parse("status=loaded pid=7\n");
        assertEquals(HookStatus.Kind.LOADED, s.kind());
        assertEquals(7, s.pid());
    }

    @Test
    void refusesWhatTheHookNeverWrites() {
        assertThrows(IllegalArgumentException.class, () -> HookStatus.parse(""));
        assertThrows(IllegalArgumentException.class, () -> HookStatus.parse("status=ok pid=1"));
        assertThrows(IllegalArgumentException.class, () -> HookStatus.parse("status=maybe pid=1"));
        assertThrows(
                IllegalArgumentException.class, () -> HookStatus.parse("status=ok pid=1 start=0xzz length=1 offset=0"));
        assertThrows(IllegalArgumentException.class, () -> HookStatus.parse("status=loaded pid=1\nstatus=ok"));
    }
}
