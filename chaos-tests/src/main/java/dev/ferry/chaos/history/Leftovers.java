package dev.ferry.chaos.history;

import dev.ferry.testkit.netns.AgentDaemon;
import dev.ferry.testkit.netns.NetnsCluster;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * What exists at the end on each agent host, looked at from outside (for I5): every process in the
 * host's namespace other than its agent (a QEMU: its VM is named by the RAM file on its command
 * line), every file in its RAM directory, every run directory in its data directory; and every run
 * lock of the run's VMs in ZooKeeper.
 */
public final class Leftovers {
    private Leftovers() {}

    /** Other runs' VMs (named r&lt;n&gt;-...) are theirs to judge; anything else found counts. */
    static boolean others(String vm, String prefix) {
        return vm.matches("r[0-9]+-.*") && !vm.startsWith(prefix);
    }

    public static void record(NetnsCluster cluster, History history, String prefix) {
        for (AgentDaemon a : cluster.agents()) {
            String host = a.hostId();
            long agentPid = a.isAlive() ? a.pid() : -1;
            for (long pid : cluster.pidsOn(a.host())) {
                if (pid == agentPid) {
                    continue;
                }
                String cmdline = cmdline(pid);
                if (cmdline.isEmpty()) {
                    continue; // exited meanwhile
                }
                if (others(vmOf(cmdline, a.ramDir()), prefix)) {
                    continue;
                }
                history.observe(
                        Observations.FINAL_QEMU, vmOf(cmdline, a.ramDir()), host, "pid " + pid + " " + brief(cmdline));
            }
            list(a.ramDir(), f -> {
                String name = f.getFileName().toString();
                // The nemesis's filler, the agent's own directory lock, and a tmpfs's lost+found are no VM's.
                if (name.startsWith("ch-filler")
                        || name.startsWith(".")
                        || name.equals("lost+found")
                        || others(name, prefix)) {
                    return;
                }
                history.observe(
                        Observations.FINAL_RAM_FILE,
                        name.endsWith(".ram") ? name.substring(0, name.length() - 4) : "",
                        host,
                        f.toString());
            });
            list(a.dataDir().resolve("vms"), d -> {
                if (!others(d.getFileName().toString(), prefix)) {
                    history.observe(Observations.FINAL_RUN_DIR, d.getFileName().toString(), host, d.toString());
                }
            });
        }
        var locks = ControlTool.read(cluster, RunLocks.class, java.time.Duration.ofSeconds(60), prefix);
        if (!locks.ok()) {
            throw new IllegalStateException("cannot read the run locks: " + locks.describe());
        }
        locks.stdout().lines().filter(l -> !l.isBlank()).forEach(l -> {
            String[] f = l.trim().split(" ");
            history.observe(Observations.FINAL_RUN_LOCK, f[0], f[1], "epoch " + f[2]);
        });
    }

    private interface Each {
        void accept(Path p);
    }

    private static void list(Path dir, Each each) {
        if (!Files.isDirectory(dir)) {
            return;
        }
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            for (Path p : s) {
                each.accept(p);
            }
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    static String cmdline(long pid) {
        try {
            byte[] b = Files.readAllBytes(Path.of("/proc", Long.toString(pid), "cmdline"));
            return new String(b, StandardCharsets.UTF_8).replace('\0', ' ').trim();
        } catch (IOException e) {
            return "";
        }
    }

    /** The VM whose RAM file in {@code ramDir} the command line names, or "". */
    static String vmOf(String cmdline, Path ramDir) {
        String prefix = ramDir.toString() + "/";
        int i = cmdline.indexOf(prefix);
        if (i < 0) {
            return "";
        }
        int end = cmdline.indexOf(".ram", i);
        return end < 0 ? "" : cmdline.substring(i + prefix.length(), end);
    }

    private static String brief(String cmdline) {
        return cmdline.length() > 80 ? cmdline.substring(0, 80) + "..." : cmdline;
    }
}
