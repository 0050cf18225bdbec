package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.console.ConsoleHistory;
import dev.ferry.testing.TestDirs;
import dev.ferry.testing.Timing;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * COM1 of a real QEMU through Ferry's console socket: the guest's output lands in the history,
 * and input reaches the guest (the Ferry test guest echoes what it reads on COM1).
 */
class ConsoleQemuTest {
    private static final Duration T = Duration.ofSeconds(20);
    private Path dir;

    @BeforeEach
    void setUp() throws Exception {
        QemuTestSupport.requireNative();
        dir = TestDirs.ramDir("console");
    }

    @AfterEach
    void tearDown() throws Exception {
        TestDirs.deleteTree(dir);
    }

    private static String text(ConsoleHistory h) {
        try {
            return new String(h.tail(1 << 16).data(), StandardCharsets.US_ASCII);
        } catch (java.io.IOException e) {
            return "";
        }
    }

    @Test
    void bytesWrittenToTheConsoleReachTheGuestWhichEchoesThemIntoTheHistory() throws Exception {
        QemuCommand c = QemuTestSupport.testGuest("g", dir, 32, "rate=0 hb=100").build();
        assertTrue(
                c.withAccel(Accel.TCG).argv().stream().noneMatch(a -> a.startsWith("file,id=console")),
                "COM1 is a socket, not a file");
        try (QemuProcess p = QemuTestSupport.start(c)) {
            ConsoleHistory h = p.console().orElseThrow();
            Timing.await("the guest's heartbeat in the history", T, () -> text(h).contains("FERRY-GUEST hb=2 "));
            // Nothing before the console connected was lost: QEMU starts the vCPUs only then.
            assertTrue(QemuTestSupport.console(c).startsWith("FERRY-GUEST start"), QemuTestSupport.console(c));
            p.consoleInput("ferry-console-input-1\n".getBytes(StandardCharsets.US_ASCII));
            Timing.await("the echo of the input", T, () -> text(h).contains("ferry-console-input-1\n"));
            // The history's offsets count every byte, and its current segment is console.log.
            assertEquals(Files.size(c.consoleLog()), h.end() - h.start());
        }
    }
}
