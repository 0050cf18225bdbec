package dev.ferry.hypervisor.net;

import dev.ferry.hypervisor.HypervisorException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The tap devices of this host's guests and the bridges they join, through iproute2 ({@code ip};
 * the agent runs as root). A tap is created persistent ({@code ip tuntap add}) before QEMU starts
 * and handed to QEMU by name ({@code -netdev tap,ifname=...,script=no}), so that the agent, not a
 * QEMU helper script, owns its lifecycle: created when the VM starts or a migration is prepared
 * here, removed when the VM stops, is deleted or leaves the host. Every failure names its step.
 */
public final class Taps {
    private static final Logger log = LoggerFactory.getLogger(Taps.class);
    private static final Path SYS_NET = Path.of("/sys/class/net");
    private static final long IP_TIMEOUT_SECONDS = 10;

    private Taps() {}

    /** The Linux bridges of this host (of the agent's network namespace), sorted. */
    public static Set<String> bridges() {
        Set<String> out = new TreeSet<>();
        try (Stream<Path> s = Files.list(SYS_NET)) {
            s.filter(p -> Files.isDirectory(p.resolve("bridge")))
                    .forEach(p -> out.add(p.getFileName().toString()));
        } catch (IOException e) {
            log.warn("cannot list {}: {}", SYS_NET, e.toString());
        }
        return out;
    }

    public static boolean isBridge(String name) {
        return Files.isDirectory(SYS_NET.resolve(name).resolve("bridge"));
    }

    public static boolean exists(String name) {
        return Files.exists(SYS_NET.resolve(name));
    }

    /** Fails with the reason unless every bridge in {@code needed} exists on this host. */
    public static void requireBridges(Set<String> needed, String step) throws HypervisorException {
        List<String> missing = needed.stream().filter(b -> !isBridge(b)).toList();
        if (!missing.isEmpty()) {
            throw new HypervisorException(
                    step,
                    "bridge" + (missing.size() == 1 ? " " : "s ") + String.join(", ", missing)
                            + (missing.size() == 1 ? " does" : " do") + " not exist on this host (present: "
                            + (bridges().isEmpty() ? "none" : String.join(", ", bridges())) + ")");
        }
    }

    /**
     * Creates tap {@code tap} on {@code bridge}, up. A tap of that name left by an earlier QEMU of
     * the same VM on this host (an agent killed before removing it) is removed first: the name is
     * the VM's card's (see {@link Nics#tapName}), so it belongs to no other guest.
     */
    public static void create(String tap, String bridge) throws HypervisorException {
        requireBridges(Set.of(bridge), "create tap " + tap);
        if (exists(tap)) {
            log.warn("tap {} is left from an earlier run of its VM: removing it", tap);
            remove(tap);
        }
        ip("create tap " + tap, "tuntap", "add", "dev", tap, "mode", "tap");
        try {
            ip("put tap " + tap + " on bridge " + bridge, "link", "set", "dev", tap, "master", bridge, "up");
        } catch (HypervisorException e) {
            removeQuietly(tap);
            throw e;
        }
    }

    /** Removes tap {@code tap} if it exists. */
    public static void remove(String tap) throws HypervisorException {
        if (exists(tap)) {
            ip("remove tap " + tap, "link", "delete", "dev", tap);
        }
    }

    /** {@link #remove}, logging instead of throwing (for the paths that end a VM whatever happens). */
    public static void removeQuietly(String tap) {
        try {
            remove(tap);
        } catch (HypervisorException e) {
            log.warn("{}", e.getMessage());
        }
    }

    private static void ip(String step, String... args) throws HypervisorException {
        List<String> cmd = new ArrayList<>();
        cmd.add("ip");
        cmd.addAll(List.of(args));
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            p.getOutputStream().close();
            if (!p.waitFor(IP_TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new HypervisorException(
                        step, String.join(" ", cmd) + " did not finish in " + IP_TIMEOUT_SECONDS + " s");
            }
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
            if (p.exitValue() != 0) {
                throw new HypervisorException(
                        step, String.join(" ", cmd) + " failed (exit " + p.exitValue() + "): " + out);
            }
        } catch (IOException e) {
            throw new HypervisorException(
                    step, "cannot run ip (iproute2; Debian: apt-get install iproute2): " + e.getMessage(), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new HypervisorException(step, "interrupted", e);
        }
    }
}
