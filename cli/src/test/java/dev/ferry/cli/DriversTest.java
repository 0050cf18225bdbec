package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.hypervisor.storage.StorageRoots;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DriversTest {
    @TempDir
    Path tmp;

    @Test
    void withoutStorageRootsAnAgentAdmitsItsImagesDirectoryAndTheSystemOne() {
        assertEquals(
                List.of(tmp.resolve("images"), StorageRoots.SYSTEM),
                Drivers.storageRoots(List.of(), tmp).roots());
        assertEquals(
                List.of(StorageRoots.SYSTEM),
                Drivers.storageRoots(List.of(), Path.of("/var/lib/ferry")).roots());
    }

    @Test
    void givenStorageRootsReplaceTheDefaults() {
        assertEquals(
                List.of(tmp),
                Drivers.storageRoots(List.of(tmp), Path.of("/data")).roots());
    }

    @Test
    void aStorageRootThatIsNotADirectoryStopsTheAgent() {
        CliException e = assertThrows(
                CliException.class, () -> Drivers.storageRoots(List.of(tmp.resolve("typo")), Path.of("/data")));
        assertEquals(2, e.exitCode());
        assertTrue(e.getMessage().contains("is not a directory"), e.getMessage());
    }

    @Test
    void theFileSystemRootIsNoStorageRoot() {
        CliException e =
                assertThrows(CliException.class, () -> Drivers.storageRoots(List.of(Path.of("/")), Path.of("/data")));
        assertEquals(2, e.exitCode());
    }
}
