package dev.ferry.hypervisor.qemu;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;

/**
 * The native pieces the build puts in the jar (under {@code native/}): the dirty-tracking hook
 * and the test guest. QEMU needs them as files, so they are copied out once per agent data
 * directory, and again only when the jar's copy differs.
 */
public record NativeArtifacts(Path hookLibrary, Path testGuest) {
    static final String HOOK = "libferryhook.so";
    static final String GUEST = "ferry-test-guest.elf";

    /** Copies the artifacts into {@code dir} (created, mode 0700) and returns their paths. */
    public static NativeArtifacts extract(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) {
            Files.createDirectories(dir.getParent());
            Files.createDirectory(
                    dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        }
        return new NativeArtifacts(copy(HOOK, dir, "rwxr-x---"), copy(GUEST, dir, "rw-r-----"));
    }

    private static Path copy(String name, Path dir, String mode) throws IOException {
        byte[] bytes;
        try (InputStream in = NativeArtifacts.class.getResourceAsStream("/native/" + name)) {
            if (in == null) {
                throw new IOException(
                        "the build did not package native/" + name + " (gcc and make are needed to build Ferry)");
            }
            bytes = in.readAllBytes();
        }
        Path target = dir.resolve(name);
        if (Files.exists(target) && Arrays.equals(Files.readAllBytes(target), bytes)) {
            return target;
        }
        Path tmp = Files.createTempFile(dir, name, ".tmp");
        Files.write(tmp, bytes);
        Files.setPosixFilePermissions(tmp, PosixFilePermissions.fromString(mode));
        Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        return target;
    }
}
