package dev.ferry.hypervisor.qemu;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Starts hypervisor processes so that they die with the agent.
 *
 * <p>A QEMU outliving a killed agent would be a VM nobody manages (and, once the cluster restarts
 * it elsewhere, a second copy). So QEMU is started under {@code setpriv --pdeathsig KILL}, which
 * sets PR_SET_PDEATHSIG and execs QEMU in place (same pid). The kernel sends that signal when the
 * parent <em>thread</em> ends, so every launch happens on one agent thread that lives as long as
 * the process does.
 */
final class ProcessLauncher {
    private static final Path SETPRIV = findSetpriv();
    private static final ExecutorService LAUNCHER = Executors.newSingleThreadExecutor(
            Thread.ofPlatform().daemon().name("ferry-process-launcher").factory());

    private ProcessLauncher() {}

    private static Path findSetpriv() {
        for (String dir : List.of("/usr/bin", "/bin", "/usr/sbin", "/sbin")) {
            Path p = Path.of(dir, "setpriv");
            if (Files.isExecutable(p)) {
                return p;
            }
        }
        return null;
    }

    /** True when {@code binary} (a path, or a name looked up on PATH) can be executed. */
    static boolean isExecutable(Path binary) {
        if (binary.isAbsolute() || binary.getNameCount() > 1) {
            return Files.isExecutable(binary);
        }
        String path = System.getenv("PATH");
        for (String dir : (path == null ? "/usr/bin:/bin" : path).split(":")) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, binary.toString()))) {
                return true;
            }
        }
        return false;
    }

    /** True when launched processes are killed if the agent dies. */
    static boolean diesWithAgent() {
        return SETPRIV != null;
    }

    static List<String> withParentDeathSignal(List<String> argv) {
        if (SETPRIV == null) {
            return argv;
        }
        List<String> a = new ArrayList<>(List.of(SETPRIV.toString(), "--pdeathsig", "KILL", "--"));
        a.addAll(argv);
        return a;
    }

    static Process start(ProcessBuilder pb) throws IOException {
        Future<Process> f = LAUNCHER.submit(pb::start);
        try {
            return f.get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted while starting " + pb.command().getFirst(), e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof IOException io) {
                throw io;
            }
            throw new IOException(e.getCause());
        }
    }
}
