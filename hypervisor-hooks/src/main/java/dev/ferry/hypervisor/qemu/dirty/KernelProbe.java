package dev.ferry.hypervisor.qemu.dirty;

import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.PageBitmap;
import dev.ferry.hypervisor.linux.Linux;
import dev.ferry.hypervisor.linux.LinuxException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Checks, once at agent start, that this kernel can track guest writes the way Ferry's QEMU driver
 * needs: userfaultfd with async write-protect (UFFD_FEATURE_WP_ASYNC, WP_UNPOPULATED) and the
 * PAGEMAP_SCAN ioctl. It does the real thing on a small shared tmpfs mapping in this JVM,
 * write-protect, one write, one scan, so a "present" answer means the mechanism works here, not
 * merely that the constants are known.
 */
public final class KernelProbe {
    private static final int PROBE_PAGES = 16;
    private static final long[] WRITTEN = {3, 9, 10};

    private KernelProbe() {}

    /**
     * What the probe found.
     *
     * @param present true when userfaultfd async write-protect and PAGEMAP_SCAN both work
     * @param detail one sentence for operators: what works, or what is missing and why
     */
    public record Result(boolean present, String detail) {}

    /** Probes using a scratch file in /dev/shm (or the JVM's temp directory without it). */
    public static Result probe() {
        Path shm = Path.of("/dev/shm");
        Path dir =
                Files.isDirectory(shm) && Files.isWritable(shm) ? shm : Path.of(System.getProperty("java.io.tmpdir"));
        return probe(dir);
    }

    static Result probe(Path scratchDir) {
        int uffd;
        try {
            uffd = Linux.userfaultfd(Linux.O_CLOEXEC | Linux.O_NONBLOCK | KernelAbi.UFFD_USER_MODE_ONLY);
        } catch (LinuxException e) {
            String why = switch (e.errno()) {
                case 38 -> "this kernel has no userfaultfd (CONFIG_USERFAULTFD off)";
                case 1 -> "userfaultfd is not permitted to this user (vm.unprivileged_userfaultfd, seccomp?)";
                default -> "userfaultfd failed";
            };
            return missing(why + ": " + e.getMessage());
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment api = arena.allocate(KernelAbi.UFFDIO_API_ARG);
            api.set(ValueLayout.JAVA_LONG, 0, KernelAbi.UFFD_API);
            long wanted = KernelAbi.UFFD_FEATURE_WP_ASYNC | KernelAbi.UFFD_FEATURE_WP_UNPOPULATED;
            api.set(ValueLayout.JAVA_LONG, 8, wanted);
            try {
                // SAFETY: api is a 24-byte uffdio_api in this confined arena, alive for the call; the
                // kernel fills in features and ioctls.
                Linux.ioctl(uffd, KernelAbi.UFFDIO_API, api);
            } catch (LinuxException e) {
                return missing(
                        "userfaultfd lacks async write-protect (UFFD_FEATURE_WP_ASYNC and WP_UNPOPULATED, Linux 6.7+): "
                                + "UFFDIO_API " + e.getMessage());
            }
            long features = api.get(ValueLayout.JAVA_LONG, 8);
            if ((features & wanted) != wanted) {
                return missing(String.format(
                        "userfaultfd offers features 0x%x without async write-protect (need 0x%x)", features, wanted));
            }
            return scanProbe(uffd, scratchDir, features);
        } finally {
            // Closing the userfaultfd also drops the probe mapping's registration.
            Linux.close(uffd);
        }
    }

    private static Result scanProbe(int uffd, Path scratchDir, long features) {
        long size = (long) PROBE_PAGES * PagemapScanner.PAGE_SIZE;
        Path file;
        try {
            file = Files.createTempFile(scratchDir, "ferry-kernel-probe-", ".ram");
        } catch (IOException e) {
            return missing("cannot create a probe file in " + scratchDir + ": " + e.getMessage());
        }
        try (Arena mapping = Arena.ofConfined();
                FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ch.truncate(0);
            ch.write(java.nio.ByteBuffer.allocate(1), size - 1);
            MemorySegment ram = ch.map(FileChannel.MapMode.READ_WRITE, 0, size, mapping);
            MemorySegment reg = mapping.allocate(KernelAbi.UFFDIO_REGISTER_ARG);
            reg.set(ValueLayout.JAVA_LONG, 0, ram.address());
            reg.set(ValueLayout.JAVA_LONG, 8, size);
            reg.set(ValueLayout.JAVA_LONG, 16, KernelAbi.UFFDIO_REGISTER_MODE_WP);
            try {
                // SAFETY: the range is exactly the probe mapping this method created (page-aligned, alive
                // until the arena closes after the registration is dropped with the uffd); with WP_ASYNC
                // the kernel resolves write faults itself, so no thread of this JVM can ever block on it.
                Linux.ioctl(uffd, KernelAbi.UFFDIO_REGISTER, reg);
            } catch (LinuxException e) {
                return missing("UFFDIO_REGISTER (write-protect) of a shared tmpfs mapping failed: " + e.getMessage());
            }
            MemorySegment wp = mapping.allocate(KernelAbi.UFFDIO_WRITEPROTECT_ARG);
            wp.set(ValueLayout.JAVA_LONG, 0, ram.address());
            wp.set(ValueLayout.JAVA_LONG, 8, size);
            wp.set(ValueLayout.JAVA_LONG, 16, KernelAbi.UFFDIO_WRITEPROTECT_MODE_WP);
            try {
                // SAFETY: same registered range as above; wp is a 24-byte uffdio_writeprotect in the arena.
                Linux.ioctl(uffd, KernelAbi.UFFDIO_WRITEPROTECT, wp);
            } catch (LinuxException e) {
                return missing("UFFDIO_WRITEPROTECT failed: " + e.getMessage());
            }
            for (long page : WRITTEN) {
                ram.set(ValueLayout.JAVA_BYTE, page * PagemapScanner.PAGE_SIZE + 7, (byte) 1);
            }
            long self = ProcessHandle.current().pid();
            try (PagemapScanner scanner = PagemapScanner.open(self, ram.address(), size)) {
                PageBitmap first = new PageBitmap(PROBE_PAGES);
                scanner.collect(first, true);
                PageBitmap second = new PageBitmap(PROBE_PAGES);
                scanner.collect(second, true);
                List<Long> found = setPages(first);
                if (!found.equals(List.of(WRITTEN[0], WRITTEN[1], WRITTEN[2]))) {
                    return missing("PAGEMAP_SCAN reported pages " + found + " written where the probe wrote "
                            + List.of(WRITTEN[0], WRITTEN[1], WRITTEN[2]));
                }
                if (!second.isEmpty()) {
                    return missing("PAGEMAP_SCAN did not re-protect: a second scan reported " + setPages(second));
                }
            } catch (HypervisorException e) {
                return missing(e.getMessage());
            }
            return new Result(
                    true,
                    String.format(
                            "userfaultfd async write-protect (features 0x%x) and PAGEMAP_SCAN "
                                    + "collect-and-reprotect work on this kernel (%s)",
                            features, System.getProperty("os.version")));
        } catch (IOException e) {
            return missing("cannot map a probe file in " + scratchDir + ": " + e.getMessage());
        } finally {
            try {
                Files.deleteIfExists(file);
            } catch (IOException e) {
                // A leftover 64 KiB probe file is harmless.
            }
        }
    }

    private static List<Long> setPages(PageBitmap b) {
        List<Long> pages = new ArrayList<>();
        for (long p = b.nextSetBit(0); p >= 0; p = b.nextSetBit(p + 1)) {
            pages.add(p);
        }
        return pages;
    }

    private static Result missing(String why) {
        return new Result(
                false,
                "no dirty-page tracking for QEMU on this kernel (" + System.getProperty("os.version") + "): " + why);
    }
}
