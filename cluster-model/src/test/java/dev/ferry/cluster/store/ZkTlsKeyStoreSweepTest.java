package dev.ferry.cluster.store;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The joined key-and-certificate files ZooKeeper's client needs are private keys: a daemon killed
 * with SIGKILL (every chaos scenario does it) used to leave its copy in /tmp for good (a CI machine
 * had hundreds). The next process removes those of processes that are gone, and only those.
 */
class ZkTlsKeyStoreSweepTest {
    @TempDir
    Path tmp;

    @Test
    void aKilledDaemonsKeyStoreIsRemovedByTheNextProcessAndALiveOnesIsKept() throws IOException {
        long dead = deadPid();
        Path stale = keyStoreDir("ferry-zk-" + dead + "-123");
        Path live = keyStoreDir("ferry-zk-" + ProcessHandle.current().pid() + "-456");
        // The old naming (no pid) and unrelated names are not Ferry's to judge: left alone.
        Path unnamed = keyStoreDir("ferry-zk-789");
        Path other = keyStoreDir("ferry-zkx-" + dead + "-1");

        assertEquals(1, ZkTls.sweepStaleKeyStores(tmp));

        assertFalse(Files.exists(stale), "a gone process's key store stays in /tmp");
        assertTrue(Files.exists(live.resolve("host-1.pem")), "a live process's key store was removed");
        assertTrue(Files.exists(unnamed));
        assertTrue(Files.exists(other));
    }

    @Test
    void aMissingTemporaryDirectoryIsNoError() {
        assertEquals(0, ZkTls.sweepStaleKeyStores(tmp.resolve("absent")));
    }

    private Path keyStoreDir(String name) throws IOException {
        Path d = Files.createDirectory(tmp.resolve(name));
        Files.writeString(d.resolve("host-1.pem"), "-----BEGIN PRIVATE KEY-----\n");
        return d;
    }

    /** A pid no process has now: a child that has exited and been reaped. */
    private static long deadPid() throws IOException {
        Process p = new ProcessBuilder("true").start();
        try {
            p.waitFor();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
        long pid = p.pid();
        assertTrue(ProcessHandle.of(pid).isEmpty(), "the child's pid is still taken");
        return pid;
    }
}
