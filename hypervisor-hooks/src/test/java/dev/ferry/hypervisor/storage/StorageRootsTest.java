package dev.ferry.hypervisor.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class StorageRootsTest {
    @TempDir
    Path tmp;

    private Path root;
    private Path outside;
    private StorageRoots roots;

    @BeforeEach
    void layout() throws IOException {
        root = Files.createDirectories(tmp.resolve("images"));
        outside = Files.writeString(tmp.resolve("secret"), "host data");
        roots = StorageRoots.of(root);
    }

    private String refusal(String what, String path) {
        return assertThrows(StorageRefusedException.class, () -> roots.check(what, path))
                .getMessage();
    }

    @Test
    void aRegularFileInsideARootIsAcceptedAsItsRealPath() throws Exception {
        Path img = Files.writeString(
                Files.createDirectories(root.resolve("tenant")).resolve("root.img"), "x");
        assertEquals(img.toRealPath(), roots.check("disk", img.toString()));
    }

    @Test
    void aRootThatIsASymlinkAdmitsTheFilesOfItsTarget() throws Exception {
        Path volume = Files.createDirectories(tmp.resolve("volume"));
        Path img = Files.writeString(volume.resolve("root.img"), "x");
        Path linkedRoot = Files.createSymbolicLink(tmp.resolve("linked-images"), volume);
        assertEquals(
                img.toRealPath(),
                StorageRoots.of(linkedRoot)
                        .check("disk", linkedRoot.resolve("root.img").toString()));
    }

    @Test
    void aFileOutsideEveryRootIsRefusedNamingTheFieldAndTheRoots() {
        assertEquals(
                "kernel " + outside + " is not a regular file under a storage root (" + root
                        + "): it is a regular file outside them",
                refusal("kernel", outside.toString()));
    }

    @Test
    void aSymlinkInsideARootPointingOutsideIsRefused() throws Exception {
        Path link = Files.createSymbolicLink(root.resolve("escape.img"), outside);
        String m = refusal("disk", link.toString());
        assertTrue(m.contains("it resolves to " + outside.toRealPath() + ", a regular file outside them"), m);
    }

    @Test
    void aDotDotEscapeFromARootIsRefused() {
        String m = refusal("initrd", root + "/../secret");
        assertTrue(m.startsWith("initrd " + root + "/../secret is not a regular file under a storage root"), m);
    }

    @Test
    void aSiblingDirectoryWhoseNameStartsWithTheRootsIsNotUnderIt() throws Exception {
        Path img = Files.writeString(
                Files.createDirectories(tmp.resolve("images2")).resolve("a.img"), "x");
        assertTrue(refusal("disk", img.toString()).endsWith("outside them"));
    }

    @Test
    void aDeviceIsRefusedEvenThroughASymlinkInsideARoot() throws Exception {
        assertEquals(
                "disk /dev/null is not a regular file under a storage root (" + root
                        + "): it is a character device outside them",
                refusal("disk", "/dev/null"));
        Path link = Files.createSymbolicLink(root.resolve("null.img"), Path.of("/dev/null"));
        assertTrue(refusal("disk", link.toString()).endsWith("a character device outside them"));
    }

    @Test
    void aDeviceNodeUnderARootIsRefused() {
        // /dev as an operator's (mistaken) root: the files under it are devices, not images.
        String m = assertThrows(
                        StorageRefusedException.class,
                        () -> StorageRoots.of(Path.of("/dev")).check("disk", "/dev/null"))
                .getMessage();
        assertEquals("disk /dev/null is not a regular file under a storage root (/dev): it is a character device", m);
    }

    @Test
    void aDirectoryUnderARootIsRefused() throws Exception {
        Path dir = Files.createDirectories(root.resolve("dir.img"));
        assertTrue(refusal("disk", dir.toString()).endsWith("it is a directory"));
        assertTrue(refusal("disk", root.toString()).endsWith("it is a directory outside them"));
    }

    @Test
    void aRelativePathIsRefused() {
        assertEquals(
                "disk path must be absolute (every host resolves it): images/root.img",
                refusal("disk", "images/root.img"));
    }

    @Test
    void aMissingFileIsRefusedAsMissing() {
        assertEquals("disk " + root + "/none.img does not exist on this host", refusal("disk", root + "/none.img"));
    }

    @Test
    void aRootThatDoesNotExistAdmitsNothing() throws Exception {
        StorageRoots missing = StorageRoots.of(tmp.resolve("not-yet"));
        assertEquals(java.util.List.of(tmp.resolve("not-yet")), missing.absent());
        assertThrows(StorageRefusedException.class, () -> missing.check("disk", outside.toString()));
        assertThrows(
                StorageRefusedException.class,
                () -> new StorageRoots(java.util.List.of()).check("disk", outside.toString()));
    }

    @Test
    void aRelativeRootIsAConfigurationError() {
        assertThrows(IllegalArgumentException.class, () -> StorageRoots.of(Path.of("images")));
    }
}
