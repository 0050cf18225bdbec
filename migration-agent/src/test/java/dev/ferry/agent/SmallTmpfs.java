package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A size-limited tmpfs mounted over a directory, so a test can run a host out of memory for guest
 * RAM without running the machine out of it. Needs root (CI runs as root); elsewhere the test is
 * skipped, unless tests that need the host are required (CI, or -Dferry.qemu.required=true).
 */
final class SmallTmpfs implements AutoCloseable {
    private final Path dir;

    private SmallTmpfs(Path dir) {
        this.dir = dir;
    }

    static SmallTmpfs mount(Path dir, long bytes) throws IOException, InterruptedException {
        boolean root = "root".equals(System.getProperty("user.name"));
        String ci = System.getenv("CI");
        boolean required =
                Boolean.getBoolean("ferry.qemu.required") || (ci != null && !ci.isBlank() && !ci.equals("false"));
        if (!root) {
            if (required) {
                fail("mounting a tmpfs needs root, and this test is required here");
            }
            assumeTrue(false, "mounting a tmpfs needs root: skipped");
        }
        Files.createDirectories(dir);
        run(List.of("mount", "-t", "tmpfs", "-o", "size=" + bytes + ",mode=0700", "tmpfs", dir.toString()));
        return new SmallTmpfs(dir);
    }

    /** Writes into a file until the file system is full. */
    void fill(String name) throws IOException {
        byte[] chunk = new byte[1 << 16];
        java.util.Arrays.fill(chunk, (byte) 0x5a);
        try (var out = Files.newOutputStream(dir.resolve(name))) {
            while (true) {
                out.write(chunk);
            }
        } catch (IOException e) {
            if (e.getMessage() == null || !e.getMessage().contains("No space left")) {
                throw e;
            }
        }
    }

    @Override
    public void close() throws IOException, InterruptedException {
        run(List.of("umount", "-l", dir.toString()));
    }

    private static void run(List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            p.destroyForcibly();
            throw new IOException(String.join(" ", cmd) + " failed: "
                    + new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip());
        }
    }
}
