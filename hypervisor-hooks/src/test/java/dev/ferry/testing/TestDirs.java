package dev.ferry.testing;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

/** Scratch directories on tmpfs for guest RAM files, removed by the test. */
public final class TestDirs {
    private TestDirs() {}

    /** A fresh directory under /dev/shm (tmpfs, as RAM files need), or the JVM temp dir elsewhere. */
    public static Path ramDir(String prefix) throws IOException {
        Path shm = Path.of("/dev/shm");
        Path base =
                Files.isDirectory(shm) && Files.isWritable(shm) ? shm : Path.of(System.getProperty("java.io.tmpdir"));
        return Files.createTempDirectory(base, "ferry-test-" + prefix + "-");
    }

    public static void deleteTree(Path dir) throws IOException {
        if (dir == null || !Files.exists(dir)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
