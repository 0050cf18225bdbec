package dev.ferry.testkit.netns;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The kit's namespaces on this machine, and the removal of what a crashed run left behind.
 *
 * <p>Every cluster has an id, {@code fk} and four lowercase letters or digits, and every namespace
 * it creates is named {@code ID-SUFFIX}. Before it creates anything it writes an owner file,
 * {@code /run/ferry-testkit/ID}, naming the JVM that owns it (pid and start time) and its scratch
 * directory. A cluster whose owner is gone (a JVM killed before its shutdown hook ran) is stale:
 * {@link #sweep()} kills every process in its namespaces (daemons and QEMUs), unmounts its tmpfs
 * mounts, deletes the namespaces (which takes the veths and the bridge with them) and its scratch
 * directory. Clusters of live JVMs, such as other test runs on the same machine, are left alone.
 */
public final class StaleNamespaces {
    private static final Logger log = LoggerFactory.getLogger(StaleNamespaces.class);
    static final Path OWNERS = Path.of("/run/ferry-testkit");
    static final Pattern ID = Pattern.compile("fk[0-9a-z]{4}");
    private static final Pattern NAMESPACE = Pattern.compile("^(fk[0-9a-z]{4})-\\S+");
    /** Sweeps of this JVM run one at a time (two clusters starting at once must not remove the same leftovers twice). */
    private static final Object SWEEP = new Object();

    private StaleNamespaces() {}

    /** Owner-file record: which JVM owns a cluster, and where its files are. */
    record Owner(long pid, String start, Path root) {
        boolean alive() {
            Optional<ProcessHandle> p = ProcessHandle.of(pid);
            return p.isPresent() && p.get().isAlive() && startOf(p.get()).equals(start);
        }

        static Optional<Owner> read(String id) {
            Path f = OWNERS.resolve(id);
            try {
                Map<String, String> kv = new LinkedHashMap<>();
                for (String line : Files.readAllLines(f, StandardCharsets.UTF_8)) {
                    int sp = line.indexOf(' ');
                    if (sp > 0) {
                        kv.put(line.substring(0, sp), line.substring(sp + 1));
                    }
                }
                return Optional.of(new Owner(
                        Long.parseLong(kv.getOrDefault("pid", "-1")),
                        kv.getOrDefault("start", ""),
                        Path.of(kv.getOrDefault("root", "/nonexistent"))));
            } catch (IOException | NumberFormatException e) {
                return Optional.empty();
            }
        }

        void write(String id) throws IOException {
            Files.createDirectories(OWNERS);
            Path tmp = OWNERS.resolve(id + ".tmp");
            Files.writeString(tmp, "pid " + pid + "\nstart " + start + "\nroot " + root + "\n", StandardCharsets.UTF_8);
            Files.move(tmp, OWNERS.resolve(id), java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        }
    }

    static String startOf(ProcessHandle p) {
        return p.info().startInstant().map(Object::toString).orElse("?");
    }

    static Owner me(Path root) {
        ProcessHandle self = ProcessHandle.current();
        return new Owner(self.pid(), startOf(self), root);
    }

    /** Every namespace on this machine, by name. */
    static List<String> namespaces() {
        CommandResult r = Commands.run(List.of("ip", "netns", "list"));
        List<String> out = new ArrayList<>();
        if (!r.ok()) {
            return out;
        }
        for (String line : r.stdout().split("\n")) {
            String name = line.strip().split("\\s+")[0];
            if (!name.isEmpty()) {
                out.add(name);
            }
        }
        return out;
    }

    /** The kit's namespaces of cluster {@code id}. */
    static List<String> namespacesOf(String id) {
        return namespaces().stream().filter(n -> n.startsWith(id + "-")).toList();
    }

    /** Cluster ids that have namespaces or an owner file on this machine. */
    static Set<String> clusterIds() {
        Set<String> ids = new LinkedHashSet<>();
        for (String n : namespaces()) {
            Matcher m = NAMESPACE.matcher(n);
            if (m.matches()) {
                ids.add(m.group(1));
            }
        }
        if (Files.isDirectory(OWNERS)) {
            try (Stream<Path> s = Files.list(OWNERS)) {
                s.map(p -> p.getFileName().toString())
                        .filter(n -> ID.matcher(n).matches())
                        .forEach(ids::add);
            } catch (IOException e) {
                log.warn("cannot list {}: {}", OWNERS, e.toString());
            }
        }
        return ids;
    }

    /**
     * Removes every cluster whose owning JVM is gone. Returns the ids removed. Safe to call while
     * other JVMs run clusters: theirs have live owners.
     */
    public static List<String> sweep() {
        synchronized (SWEEP) {
            return sweepLocked();
        }
    }

    private static List<String> sweepLocked() {
        List<String> removed = new ArrayList<>();
        for (String id : clusterIds()) {
            Optional<Owner> owner = Owner.read(id);
            if (owner.isPresent() && owner.get().alive()) {
                continue;
            }
            if (owner.isEmpty() && isBeingCreated(id)) {
                continue;
            }
            log.warn(
                    "removing stale test cluster {} (owner {})",
                    id,
                    owner.map(Owner::toString).orElse("unknown"));
            remove(id, owner.map(Owner::root).orElse(null));
            removed.add(id);
        }
        return removed;
    }

    /** A cluster's owner file is written before its first namespace; without one, only a crash mid-write explains it. */
    private static boolean isBeingCreated(String id) {
        return Files.exists(OWNERS.resolve(id + ".tmp"));
    }

    /**
     * Tears down cluster {@code id}: SIGKILL to every process in its namespaces (repeated until
     * none is left, since a dying agent's children may still be starting), unmount of every mount
     * under {@code root}, deletion of its namespaces, {@code root} and its owner file. Every step
     * is attempted even when an earlier one failed; returns what could not be removed.
     */
    static List<String> remove(String id, Path root) {
        List<String> problems = new ArrayList<>();
        List<String> spaces = namespacesOf(id);
        for (int round = 0; round < 50; round++) {
            boolean any = false;
            for (String ns : spaces) {
                for (String pid : pids(ns)) {
                    any = true;
                    Commands.run(List.of("kill", "-9", pid));
                }
            }
            if (!any) {
                break;
            }
            Daemon.sleep(100);
        }
        for (String ns : spaces) {
            if (!pids(ns).isEmpty()) {
                problems.add("processes left in " + ns + ": " + pids(ns));
            }
        }
        if (root != null) {
            for (Path m : mountsUnder(root)) {
                CommandResult r = Commands.run(List.of("umount", "-l", m.toString()));
                if (!r.ok()) {
                    problems.add(r.describe());
                }
            }
        }
        for (String ns : spaces) {
            CommandResult r = Commands.run(List.of("ip", "netns", "delete", ns));
            if (!r.ok()) {
                problems.add(r.describe());
            }
        }
        if (root != null && Files.exists(root)) {
            try (Stream<Path> s = Files.walk(root)) {
                for (Path p : s.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            } catch (IOException e) {
                problems.add("cannot delete " + root + ": " + e);
            }
        }
        try {
            Files.deleteIfExists(OWNERS.resolve(id));
        } catch (IOException e) {
            problems.add("cannot delete the owner file of " + id + ": " + e);
        }
        return problems;
    }

    /** Pids of the processes in namespace {@code ns} ({@code ip netns pids}). */
    static List<String> pids(String ns) {
        CommandResult r = Commands.run(List.of("ip", "netns", "pids", ns));
        if (!r.ok()) {
            return List.of();
        }
        return Stream.of(r.stdout().split("\\s+")).filter(s -> !s.isBlank()).toList();
    }

    /** Mount points at or under {@code root}, deepest first. */
    static List<Path> mountsUnder(Path root) {
        List<Path> out = new ArrayList<>();
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/mounts"), StandardCharsets.UTF_8)) {
                String[] f = line.split(" ");
                if (f.length > 1) {
                    // /proc/mounts escapes spaces as \040; the kit's paths have none.
                    Path p = Path.of(f[1]);
                    if (p.startsWith(root)) {
                        out.add(p);
                    }
                }
            }
        } catch (IOException e) {
            log.warn("cannot read /proc/self/mounts: {}", e.toString());
        }
        out.sort(Comparator.comparingInt(Path::getNameCount).reversed());
        return out;
    }
}
