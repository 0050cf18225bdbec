package dev.ferry.hypervisor.storage;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Collectors;

/**
 * The directories an operator set aside for VM storage: the only places a VM spec's disks,
 * kernel and initrd may come from.
 *
 * <p>A spec comes from whoever may create a VM or prepare a migration here; without this policy
 * it could name any file the agent can read ({@code /dev/sda}, another tenant's image, the
 * agent's own keys) and have QEMU hand it to a guest. A path is accepted only if, with every
 * symlink and {@code ..} resolved, it is a regular file inside the resolved path of a root.
 * Roots are resolved at each check, so a root that is itself a symlink (to a mounted volume, say)
 * works, and one created after start-up counts from then on.
 *
 * @param roots absolute directories; a root that does not exist admits nothing until it does
 */
public record StorageRoots(List<Path> roots) {
    /** The system-wide default root, for hosts without their own configuration. */
    public static final Path SYSTEM = Path.of("/var/lib/ferry/images");

    public StorageRoots {
        roots = List.copyOf(roots);
        for (Path r : roots) {
            if (!r.isAbsolute()) {
                throw new IllegalArgumentException("storage root must be an absolute path: " + r);
            }
        }
    }

    public static StorageRoots of(Path... roots) {
        return new StorageRoots(List.of(roots));
    }

    /**
     * The real path of {@code path}, if a guest may use it as its {@code what} (disk, kernel,
     * initrd); otherwise a one-line reason naming the field and the roots.
     */
    public Path check(String what, String path) throws StorageRefusedException {
        Path p = Path.of(path);
        if (!p.isAbsolute()) {
            throw new StorageRefusedException(what + " path must be absolute (every host resolves it): " + path);
        }
        Path real;
        try {
            real = p.toRealPath();
        } catch (NoSuchFileException e) {
            throw new StorageRefusedException(what + " " + path + " does not exist on this host");
        } catch (IOException e) {
            throw new StorageRefusedException(what + " " + path + " is not readable on this host: " + e);
        }
        boolean under = underARoot(real);
        // toRealPath left no symlink, so this is the type of the file itself, not of a target.
        boolean regular = Files.isRegularFile(real, LinkOption.NOFOLLOW_LINKS);
        if (!under || !regular) {
            String reason = (real.equals(p) ? "it is " : "it resolves to " + real + ", ")
                    + (regular ? "a regular file" : kind(real))
                    + (under ? "" : " outside them");
            throw new StorageRefusedException(
                    what + " " + path + " is not a regular file under a storage root (" + describe() + "): " + reason);
        }
        if (!Files.isReadable(real)) {
            throw new StorageRefusedException(what + " " + path + " is not readable on this host");
        }
        return real;
    }

    private boolean underARoot(Path real) {
        for (Path root : roots) {
            Path r;
            try {
                r = root.toRealPath();
            } catch (IOException e) {
                continue; // a missing root admits nothing
            }
            // Path.startsWith compares whole names: /a/images2 is not under /a/images.
            if (real.startsWith(r) && !real.equals(r)) {
                return true;
            }
        }
        return false;
    }

    /** The roots for messages and the start-up log: "/a, /b", or "none configured". */
    public String describe() {
        if (roots.isEmpty()) {
            return "none configured";
        }
        return roots.stream().map(Path::toString).collect(Collectors.joining(", "));
    }

    /** The roots that are not existing directories now (each admits nothing until it is one). */
    public List<Path> absent() {
        return roots.stream().filter(r -> !Files.isDirectory(r)).toList();
    }

    private static String kind(Path real) {
        if (Files.isDirectory(real, LinkOption.NOFOLLOW_LINKS)) {
            return "a directory";
        }
        try {
            // The file type bits of st_mode (S_IFMT); the JDK's basic attributes only say "other".
            int type = (Integer) Files.getAttribute(real, "unix:mode", LinkOption.NOFOLLOW_LINKS) & 0170000;
            return switch (type) {
                case 0060000 -> "a block device";
                case 0020000 -> "a character device";
                case 0010000 -> "a fifo";
                case 0140000 -> "a socket";
                default -> "a special file";
            };
        } catch (IOException | UnsupportedOperationException | IllegalArgumentException e) {
            return "a special file";
        }
    }
}
