package dev.ferry.hypervisor.qemu.dirty;

import dev.ferry.hypervisor.linux.Linux;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * A shared tmpfs mapping in this JVM, registered for userfaultfd async write-protect the way the
 * hook registers QEMU's guest RAM: lets the scanner be tested without QEMU.
 */
final class WriteProtectedMapping implements AutoCloseable {
    final MemorySegment memory;
    private final Arena arena;
    private final int uffd;
    private final Path file;

    WriteProtectedMapping(Path dir, int pages) throws Exception {
        long size = (long) pages * PagemapScanner.PAGE_SIZE;
        file = Files.createTempFile(dir, "wp-", ".ram");
        arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.allocate(1), size - 1);
            memory = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, arena);
        }
        uffd = Linux.userfaultfd(Linux.O_CLOEXEC | Linux.O_NONBLOCK | KernelAbi.UFFD_USER_MODE_ONLY);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment api = a.allocate(KernelAbi.UFFDIO_API_ARG);
            api.set(ValueLayout.JAVA_LONG, 0, KernelAbi.UFFD_API);
            api.set(ValueLayout.JAVA_LONG, 8, KernelAbi.UFFD_FEATURE_WP_ASYNC | KernelAbi.UFFD_FEATURE_WP_UNPOPULATED);
            // SAFETY: a 24-byte uffdio_api in a confined arena alive for the call.
            Linux.ioctl(uffd, KernelAbi.UFFDIO_API, api);
            MemorySegment reg = a.allocate(KernelAbi.UFFDIO_REGISTER_ARG);
            reg.set(ValueLayout.JAVA_LONG, 0, memory.address());
            reg.set(ValueLayout.JAVA_LONG, 8, size);
            reg.set(ValueLayout.JAVA_LONG, 16, KernelAbi.UFFDIO_REGISTER_MODE_WP);
            // SAFETY: the range is exactly this fixture's own mapping; async mode never blocks a writer.
            Linux.ioctl(uffd, KernelAbi.UFFDIO_REGISTER, reg);
            MemorySegment wp = a.allocate(KernelAbi.UFFDIO_WRITEPROTECT_ARG);
            wp.set(ValueLayout.JAVA_LONG, 0, memory.address());
            wp.set(ValueLayout.JAVA_LONG, 8, size);
            wp.set(ValueLayout.JAVA_LONG, 16, KernelAbi.UFFDIO_WRITEPROTECT_MODE_WP);
            // SAFETY: same registered range.
            Linux.ioctl(uffd, KernelAbi.UFFDIO_WRITEPROTECT, wp);
        }
    }

    void write(long page) {
        memory.set(ValueLayout.JAVA_LONG, page * PagemapScanner.PAGE_SIZE + 8, System.nanoTime());
    }

    PagemapScanner scanner(int vecRegions) throws Exception {
        return PagemapScanner.open(ProcessHandle.current().pid(), memory.address(), memory.byteSize(), vecRegions);
    }

    @Override
    public void close() throws Exception {
        Linux.close(uffd);
        arena.close();
        Files.deleteIfExists(file);
    }
}
