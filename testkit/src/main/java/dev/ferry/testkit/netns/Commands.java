package dev.ferry.testkit.netns;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs short commands (ip, kill, mount) and collects their output. Every command has a deadline:
 * a tool that hangs (a wedged mount, a namespace being torn down) fails the caller instead of
 * hanging the test.
 */
final class Commands {
    private Commands() {}

    /** Runs {@code cmd}, returns its result whatever the exit status. */
    static CommandResult run(List<String> cmd, Map<String, String> env, Duration timeout) {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        pb.environment().putAll(env);
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot run " + String.join(" ", cmd), e);
        }
        // Both pipes are drained by threads of their own: a command that fills one pipe while we
        // read the other would otherwise block forever.
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread to = Thread.ofVirtual().start(() -> copy(p.getInputStream(), out));
        Thread te = Thread.ofVirtual().start(() -> copy(p.getErrorStream(), err));
        try {
            if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                p.waitFor(10, TimeUnit.SECONDS);
                to.join(Duration.ofSeconds(5));
                te.join(Duration.ofSeconds(5));
                return new CommandResult(
                        cmd, -1, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8), true);
            }
            to.join(Duration.ofSeconds(10));
            te.join(Duration.ofSeconds(10));
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted running " + String.join(" ", cmd), e);
        }
        synchronized (out) {
            synchronized (err) {
                return new CommandResult(
                        cmd,
                        p.exitValue(),
                        out.toString(StandardCharsets.UTF_8),
                        err.toString(StandardCharsets.UTF_8),
                        false);
            }
        }
    }

    static CommandResult run(List<String> cmd) {
        return run(cmd, Map.of(), Duration.ofSeconds(30));
    }

    /** Runs {@code cmd} and fails unless it exits 0. */
    static CommandResult check(List<String> cmd) {
        CommandResult r = run(cmd);
        if (r.exitCode() != 0) {
            throw new IllegalStateException(r.describe());
        }
        return r;
    }

    private static void copy(InputStream in, ByteArrayOutputStream to) {
        byte[] buf = new byte[8192];
        try (in) {
            int n;
            while ((n = in.read(buf)) >= 0) {
                synchronized (to) {
                    to.write(buf, 0, n);
                }
            }
        } catch (IOException e) {
            // The process died or was killed: what was read so far is the output.
        }
    }
}
