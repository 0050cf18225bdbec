package dev.ferry.hypervisor.qemu;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.ferry.hypervisor.qemu.dirty.KernelProbe;
import dev.ferry.testing.Timing;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * What the QEMU integration tests need from the host: qemu-system-x86_64, and for dirty tracking
 * the hook library and the test guest built from hypervisor-hooks/src/main/native.
 *
 * <p>Missing pieces skip the tests on a developer machine, but fail them where they are required:
 * when the CI environment variable is set or {@code -Dferry.qemu.required=true}, so CI can never
 * pass by skipping them.
 */
public final class QemuTestSupport {
    public static final Path QEMU = Path.of("qemu-system-x86_64");
    private static Optional<Path> nativeDir;

    private QemuTestSupport() {}

    static boolean required() {
        String ci = System.getenv("CI");
        return Boolean.getBoolean("ferry.qemu.required") || (ci != null && !ci.isBlank() && !ci.equals("false"));
    }

    private static void need(boolean present, String what) {
        if (present) {
            return;
        }
        if (required()) {
            fail(what + " is missing, and QEMU tests are required here (CI or -Dferry.qemu.required=true)");
        }
        assumeTrue(false, what + " is missing: QEMU test skipped");
    }

    /** Skips (or fails, where required) unless qemu-system-x86_64 is on PATH. */
    public static void requireQemu() {
        need(onPath("qemu-system-x86_64"), "qemu-system-x86_64");
    }

    /** Skips (or fails, where required) unless {@code command} is on PATH (a tool run-tests installs). */
    public static void requireCommand(String command) {
        need(onPath(command), command);
    }

    /** Skips (or fails, where required) unless the kernel can track writes (userfaultfd WP-async, PAGEMAP_SCAN). */
    public static void requireDirtyTracking() {
        KernelProbe.Result probe = KernelProbe.probe();
        need(probe.present(), "kernel dirty tracking (" + probe.detail() + ")");
    }

    /** The directory holding libferryhook.so and ferry-test-guest.elf; skips or fails when unavailable. */
    public static synchronized Path requireNative() {
        requireQemu();
        if (nativeDir == null) {
            nativeDir = findNative();
        }
        need(
                nativeDir.isPresent(),
                "the native hook library and test guest (set FERRY_NATIVE_DIR, or have make and gcc)");
        return nativeDir.get();
    }

    public static Path hookLibrary() {
        return requireNative().resolve("libferryhook.so");
    }

    public static Path testGuest() {
        return requireNative().resolve("ferry-test-guest.elf");
    }

    private static boolean complete(Path dir) {
        return Files.isRegularFile(dir.resolve("libferryhook.so"))
                && Files.isRegularFile(dir.resolve("ferry-test-guest.elf"));
    }

    /**
     * -Dferry.native.dir or FERRY_NATIVE_DIR when set (must be complete); else /tmp/ferry-native
     * when complete; else the module's own native sources built into target/ferry-native.
     */
    private static Optional<Path> findNative() {
        String configured = System.getProperty("ferry.native.dir", System.getenv("FERRY_NATIVE_DIR"));
        if (configured != null && !configured.isBlank()) {
            Path dir = Path.of(configured).toAbsolutePath();
            if (!complete(dir)) {
                fail("ferry.native.dir / FERRY_NATIVE_DIR is " + dir
                        + " but it lacks libferryhook.so or ferry-test-guest.elf");
            }
            return Optional.of(dir);
        }
        Path tmp = Path.of("/tmp/ferry-native");
        if (complete(tmp)) {
            return Optional.of(tmp);
        }
        Path sources = Path.of("src/main/native").toAbsolutePath();
        Path out = Path.of("target/ferry-native").toAbsolutePath();
        if (complete(out)) {
            return Optional.of(out);
        }
        if (!Files.isRegularFile(sources.resolve("Makefile")) || !onPath("make") || !onPath("gcc")) {
            return Optional.empty();
        }
        try {
            Path log = Files.createTempFile("ferry-native-build", ".log");
            Process p = new ProcessBuilder("make", "-C", sources.toString(), "OUT=" + out, "hook", "guest")
                    .redirectErrorStream(true)
                    .redirectOutput(log.toFile())
                    .start();
            if (!p.waitFor(120, TimeUnit.SECONDS) || p.exitValue() != 0) {
                p.destroyForcibly();
                String output = Files.readString(log, StandardCharsets.UTF_8);
                if (required()) {
                    fail("building the native pieces failed:\n" + output);
                }
                return Optional.empty();
            }
            return complete(out) ? Optional.of(out) : Optional.empty();
        } catch (IOException e) {
            return Optional.empty();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return Optional.empty();
        }
    }

    static boolean onPath(String program) {
        String path = System.getenv("PATH");
        if (path == null) {
            return false;
        }
        for (String dir : path.split(File.pathSeparator)) {
            if (Files.isExecutable(Path.of(dir, program))) {
                return true;
            }
        }
        return false;
    }

    /** A lean TCG-or-KVM guest: no kernel, paused, {@code memMiB} of RAM in a file under {@code dir}. */
    public static QemuCommand.Builder paused(String name, Path dir, int memMiB) {
        return QemuCommand.builder()
                .binary(QEMU)
                .name(name)
                .memoryBytes((long) memMiB << 20)
                .ramFile(dir.resolve(name + ".ram"))
                .runDir(dir.resolve(name))
                .startPaused(true);
    }

    /** The test guest, running, dirtying pages per {@code append} (e.g. "rate=2000 ws=16M hb=100"). */
    public static QemuCommand.Builder testGuest(String name, Path dir, int memMiB, String append) {
        return paused(name, dir, memMiB).startPaused(false).kernel(testGuest()).append(append);
    }

    /** Creates the RAM file as the agent would (sparse, 0600) for QEMU to map. */
    public static void createRamFile(QemuCommand c) throws IOException {
        Files.createDirectories(c.ramFile().getParent());
        Files.createFile(
                c.ramFile(),
                java.nio.file.attribute.PosixFilePermissions.asFileAttribute(
                        java.nio.file.attribute.PosixFilePermissions.fromString("rw-------")));
        try (java.io.RandomAccessFile f =
                new java.io.RandomAccessFile(c.ramFile().toFile(), "rw")) {
            f.setLength(c.memoryBytes());
        }
    }

    /** Creates the RAM file and starts QEMU. */
    public static QemuProcess start(QemuCommand c) throws Exception {
        createRamFile(c);
        return QemuProcess.start(c, startTimeout());
    }

    public static Duration startTimeout() {
        return Timing.seconds(15);
    }

    /** The console log's text (the test guest prints "FERRY-GUEST hb=N gen=G stale=S" lines). */
    public static String console(QemuCommand c) throws IOException {
        return Files.readString(c.consoleLog(), StandardCharsets.ISO_8859_1);
    }

    /** The highest heartbeat the test guest has printed, or -1. */
    public static long heartbeat(QemuCommand c) throws IOException {
        long hb = -1;
        for (String line : console(c).split("\n")) {
            if (line.startsWith("FERRY-GUEST hb=")) {
                String v = line.substring("FERRY-GUEST hb=".length()).split(" ")[0];
                hb = Math.max(hb, Long.parseLong(v));
            }
        }
        return hb;
    }

    /** Stale pages the test guest has reported (lines "FERRY-GUEST STALE"), plus faults. */
    public static long guestErrors(QemuCommand c) throws IOException {
        return console(c)
                .lines()
                .filter(l -> l.startsWith("FERRY-GUEST STALE") || l.startsWith("FERRY-GUEST FAULT"))
                .count();
    }
}
