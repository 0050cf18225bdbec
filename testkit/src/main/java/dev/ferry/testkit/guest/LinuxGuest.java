package dev.ferry.testkit.guest;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A small real Linux guest with a network: Debian's cloud kernel and a busybox initramfs whose
 * {@code /init} loads virtio-net, gives {@code eth0} the static address on the kernel command line
 * ({@code ferry.addr=198.18.2.10/24}), prints {@code FERRY-NET-GUEST mac=...} and {@code
 * FERRY-NET-GUEST ready} on the serial console, and serves a TCP echo on port 7 (busybox {@code nc
 * -ll -e cat}); the kernel answers pings. It boots in a few seconds under TCG.
 *
 * <p>Built from Debian packages, the way a test machine gets QEMU: {@link #prepare()} runs {@code
 * apt-get download} (needs root and Debian's archive; {@code apt-get update} once if the lists are
 * stale) for {@code linux-image-cloud-amd64}'s kernel and {@code busybox-static}, extracts them
 * with {@code dpkg-deb -x} and writes the initramfs itself (a newc cpio). The result is cached in
 * {@code ~/.cache/ferry/linux-guest/KERNEL-PACKAGE_VERSION+busybox_VERSION+init1}, so a new Debian
 * kernel makes a new guest and an unchanged one is built once. The busybox binary is kept beside
 * it: tests use its {@code ping} and {@code nc} as the guest's client.
 *
 * @param dir the cache directory (an agent's {@code --storage-root} for these files)
 * @param kernel vmlinuz
 * @param initrd the initramfs
 * @param busybox a static busybox for the host side
 */
public record LinuxGuest(Path dir, Path kernel, Path initrd, Path busybox) {
    private static final Logger log = LoggerFactory.getLogger(LinuxGuest.class);

    public static final String KERNEL_PACKAGE = "linux-image-cloud-amd64";
    public static final String BUSYBOX_PACKAGE = "busybox-static";
    /** Part of the cache key: bump it when {@link #init} or the module list changes. */
    static final String INIT_VERSION = "init1";

    /** The guest's console lines. */
    public static final String READY = "FERRY-NET-GUEST ready";

    public static final String MAC_LINE = "FERRY-NET-GUEST mac=";
    /** The TCP echo port. */
    public static final int ECHO_PORT = 7;

    /**
     * virtio-net and what it needs, in load order; the cloud kernel builds them as modules
     * (CONFIG_VIRTIO_NET=m, uncompressed .ko). One a kernel has built in is simply not found and
     * not loaded.
     */
    static final List<String> MODULES = List.of(
            "drivers/virtio/virtio.ko",
            "drivers/virtio/virtio_ring.ko",
            "drivers/virtio/virtio_pci_modern_dev.ko",
            "drivers/virtio/virtio_pci_legacy_dev.ko",
            "drivers/virtio/virtio_pci.ko",
            "net/core/failover.ko",
            "drivers/net/net_failover.ko",
            "drivers/net/virtio_net.ko");

    /** One build at a time in this JVM (another JVM that builds the same guest loses the final rename). */
    private static final Object BUILD = new Object();

    private static final Path CACHE = Path.of(System.getProperty("user.home"), ".cache", "ferry", "linux-guest");

    /** The kernel command line for a guest at {@code cidr} (198.18.x.y/n). */
    public static String append(String cidr) {
        // loglevel=5 rather than quiet: the boot stays terse, but a stall's or an oops's stack trace
        // (printed at the default level) reaches the console.
        return "console=ttyS0 loglevel=5 panic=-1 ferry.addr=" + cidr;
    }

    /** The guest, from the cache or built now (downloads about 20 MB once). */
    public static LinuxGuest prepare() throws IOException {
        synchronized (BUILD) {
            return prepareLocked();
        }
    }

    private static LinuxGuest prepareLocked() throws IOException {
        String kernelPackage = kernelPackage();
        String key = kernelPackage + "_" + version(kernelPackage) + "+busybox_" + version(BUSYBOX_PACKAGE) + "+"
                + INIT_VERSION;
        Path dir = CACHE.resolve(key.replaceAll("[^A-Za-z0-9._+-]", "_"));
        LinuxGuest g = new LinuxGuest(dir, dir.resolve("vmlinuz"), dir.resolve("initrd.img"), dir.resolve("busybox"));
        if (Files.isRegularFile(g.kernel()) && Files.isRegularFile(g.initrd()) && Files.isRegularFile(g.busybox())) {
            return g;
        }
        Files.createDirectories(CACHE);
        sweepAbandonedBuilds();
        Path work = Files.createTempDirectory(CACHE, "build-");
        try {
            log.info("building the Linux test guest {} in {}", key, dir);
            Path debs = Files.createDirectories(work.resolve("debs"));
            apt(debs, true, "apt-get", "download", kernelPackage, BUSYBOX_PACKAGE);
            Path x = work.resolve("x");
            try (Stream<Path> s = Files.list(debs)) {
                for (Path deb : s.filter(p -> p.toString().endsWith(".deb")).toList()) {
                    run(work, "dpkg-deb", "-x", deb.toString(), x.toString());
                }
            }
            Path out = Files.createDirectories(work.resolve("out"));
            Path vmlinuz = single(x.resolve("boot"), "vmlinuz-");
            Files.copy(vmlinuz, out.resolve("vmlinuz"));
            Path busybox = x.resolve("bin/busybox");
            Files.copy(busybox, out.resolve("busybox"));
            Files.setPosixFilePermissions(
                    out.resolve("busybox"), java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
            Path modules = single(x.resolve("lib/modules"), "").resolve("kernel");
            writeInitramfs(out.resolve("initrd.img"), busybox, modules);
            Files.createDirectories(dir.getParent());
            try {
                Files.move(out, dir, StandardCopyOption.ATOMIC_MOVE);
            } catch (java.nio.file.FileAlreadyExistsException | java.nio.file.DirectoryNotEmptyException e) {
                log.info("another run built {} first", dir);
            }
            return g;
        } finally {
            deleteTree(work);
        }
    }

    /** Build directories of runs killed half way (over an hour old: no live build takes that long). */
    private static void sweepAbandonedBuilds() throws IOException {
        long cutoff = System.currentTimeMillis() - TimeUnit.HOURS.toMillis(1);
        try (Stream<Path> s = Files.list(CACHE)) {
            for (Path p : s.filter(p -> p.getFileName().toString().startsWith("build-"))
                    .toList()) {
                if (Files.getLastModifiedTime(p).toMillis() < cutoff) {
                    deleteTree(p);
                }
            }
        }
    }

    private static void writeInitramfs(Path target, Path busybox, Path modules) throws IOException {
        List<String> present = new ArrayList<>();
        try (OutputStream os = Files.newOutputStream(target);
                Cpio cpio = new Cpio(new java.io.BufferedOutputStream(os))) {
            for (String d : List.of("bin", "dev", "proc", "sys", "lib", "lib/modules")) {
                cpio.dir(d);
            }
            // The kernel opens /dev/console for init before anything is mounted.
            cpio.charDevice("dev/console", 5, 1);
            cpio.file("bin/busybox", 0755, Files.readAllBytes(busybox));
            for (String m : MODULES) {
                Path ko = modules.resolve(m);
                if (Files.isRegularFile(ko)) {
                    String name = ko.getFileName().toString();
                    cpio.file("lib/modules/" + name, 0644, Files.readAllBytes(ko));
                    present.add(name);
                }
            }
            cpio.file("init", 0755, init(present).getBytes(StandardCharsets.US_ASCII));
        }
    }

    static String init(List<String> modules) {
        return """
                #!/bin/busybox sh
                /bin/busybox --install -s /bin
                mount -t proc proc /proc
                mount -t sysfs sys /sys
                mount -t devtmpfs dev /dev
                exec </dev/console >/dev/console 2>&1
                for m in @MODULES@; do insmod /lib/modules/$m || echo "FERRY-NET-GUEST insmod $m failed"; done
                addr=$(sed -n 's/.*ferry.addr=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
                ip link set lo up
                ip link set eth0 up
                ip addr add "$addr" dev eth0
                echo "FERRY-NET-GUEST mac=$(cat /sys/class/net/eth0/address) addr=$addr"
                nc -ll -p @PORT@ -e cat &
                echo "@READY@"
                while true; do sleep 3600; done
                """.replace("@MODULES@", String.join(" ", modules))
                .replace("@PORT@", Integer.toString(ECHO_PORT))
                .replace("@READY@", READY);
    }

    private static String kernelPackage() throws IOException {
        String deps = apt(null, false, "apt-cache", "depends", KERNEL_PACKAGE);
        for (String line : deps.split("\n")) {
            String l = line.trim();
            if (l.startsWith("Depends: linux-image-")) {
                return l.substring("Depends: ".length()).trim();
            }
        }
        throw new IOException("apt-cache depends " + KERNEL_PACKAGE + " names no linux-image package:\n" + deps);
    }

    private static String version(String pkg) throws IOException {
        String show = apt(null, false, "apt-cache", "show", "--no-all-versions", pkg);
        for (String line : show.split("\n")) {
            if (line.startsWith("Version: ")) {
                return line.substring("Version: ".length()).trim();
            }
        }
        throw new IOException("apt-cache show " + pkg + " gives no version:\n" + show);
    }

    /** Runs an apt command; when it fails, refreshes the package lists once (a fresh image) and retries. */
    private static String apt(Path cwd, boolean download, String... cmd) throws IOException {
        try {
            String out = run(cwd, cmd);
            if (!download && out.isBlank()) {
                throw new IOException(String.join(" ", cmd) + " printed nothing");
            }
            return out;
        } catch (IOException first) {
            log.info("{} failed ({}): apt-get update, then once more", String.join(" ", cmd), first.getMessage());
            run(null, "apt-get", "update", "-q");
            return run(cwd, cmd);
        }
    }

    private static String run(Path cwd, String... cmd) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        if (cwd != null) {
            pb.directory(cwd.toFile());
        }
        pb.environment().putAll(Map.of("DEBIAN_FRONTEND", "noninteractive", "LC_ALL", "C"));
        Process p = pb.start();
        p.getOutputStream().close();
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        try (InputStream in = p.getInputStream()) {
            in.transferTo(buf);
            if (!p.waitFor(5, TimeUnit.MINUTES)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", cmd) + " did not finish in 5 minutes");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
            throw new IOException("interrupted", e);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        if (p.exitValue() != 0) {
            throw new IOException(String.join(" ", cmd) + " failed (exit " + p.exitValue() + "): " + out.strip());
        }
        return out;
    }

    private static Path single(Path dir, String prefix) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            List<Path> found = s.filter(p -> p.getFileName().toString().startsWith(prefix))
                    .sorted()
                    .toList();
            if (found.size() != 1) {
                throw new IOException("expected one " + prefix + "* in " + dir + ", found " + found);
            }
            return found.getFirst();
        }
    }

    private static void deleteTree(Path root) {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot delete " + root, e);
        }
    }

    /** The console line with the guest's MAC in {@code console}, if printed. */
    public static Optional<String> macIn(String console) {
        int at = console.lastIndexOf(MAC_LINE);
        if (at < 0) {
            return Optional.empty();
        }
        return Optional.of(console.substring(at + MAC_LINE.length(), at + MAC_LINE.length() + 17));
    }
}
