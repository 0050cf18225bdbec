package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class QemuExitTest {
    @Test
    void aSignalIsToldApartFromAnExitStatus() {
        QemuExit killed = QemuExit.of(false, 128 + 9, null, List.of("x"));
        assertEquals(9, killed.signal());
        assertEquals(-1, killed.exitCode());
        assertTrue(killed.reason().contains("signal 9 (SIGKILL)"), killed.reason());
        QemuExit failed = QemuExit.of(false, 1, "during start-up", List.of("qemu: -foo: invalid option"));
        assertEquals(1, failed.exitCode());
        assertEquals(0, failed.signal());
        assertTrue(failed.reason().contains("invalid option"), failed.reason());
    }
}
