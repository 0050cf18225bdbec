package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import org.junit.jupiter.api.Test;

class NativeMigrationSafetyTest {
    private static QemuVersion v(int major, int minor, int micro) {
        return new QemuVersion(major, minor, micro, "");
    }

    @Test
    void tcgBeforeNineLosesWritesAndSaysWhatToDoInstead() {
        Optional<String> h = NativeMigrationSafety.hazard(Accel.TCG, new QemuVersion(7, 2, 22, "Debian 1:7.2+dfsg-7"));
        assertTrue(h.isPresent());
        assertTrue(h.get().startsWith("QEMU 7.2.22 (Debian 1:7.2+dfsg-7) under TCG loses guest writes"), h.get());
        assertTrue(h.get().contains("03bfc2188f"), h.get());
        assertTrue(h.get().contains("--mode precopy"), h.get());
        assertTrue(NativeMigrationSafety.hazard(Accel.TCG, v(8, 2, 9)).isPresent());
        assertTrue(NativeMigrationSafety.hazard(Accel.TCG, null).isPresent(), "unknown version: not trusted");
    }

    @Test
    void tcgFromNineAndKvmAreNotKnownToLoseWrites() {
        assertEquals(Optional.empty(), NativeMigrationSafety.hazard(Accel.TCG, v(9, 0, 0)));
        assertEquals(Optional.empty(), NativeMigrationSafety.hazard(Accel.TCG, v(10, 1, 2)));
        assertEquals(Optional.empty(), NativeMigrationSafety.hazard(Accel.KVM, v(7, 2, 22)));
        assertEquals(Optional.empty(), NativeMigrationSafety.hazard(Accel.KVM, null));
    }
}
