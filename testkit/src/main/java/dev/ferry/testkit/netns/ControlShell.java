package dev.ferry.testkit.netns;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One long-lived JVM on a host that runs read-only commands in-process: {@code ferry} commands
 * ({@code vm list --json}, {@code cluster status --json}) and small tools with a {@code main}. A
 * test that polls the cluster's records several times a second otherwise starts a JVM, a TLS
 * handshake with ZooKeeper and one with the coordinator for every look: seconds each on a loaded
 * 2-core machine, most of a chaos run's fixed cost. What it reads is what the same command run as
 * its own process prints (the CLI's own code, with its output captured), so checkers still judge
 * from the cluster's records, not from the test's guesses.
 *
 * <p>Commands that change the cluster are not run here: they are the workload, and run as an
 * operator runs them, one process each ({@link NetnsCluster#cli}).
 *
 * <p>Requests are answered one at a time. A request that outlives its deadline kills the shell
 * (whatever it was stuck on goes with it); the next request starts a new one. A tool that calls
 * {@code System.exit} ends the shell the same way, and its caller gets a failed result.
 */
public final class ControlShell implements AutoCloseable {
    /** The class whose {@code main} the shell runs {@code ferry} commands with. */
    public static final String CLI = dev.ferry.cli.Main.class.getName();

    private static final String RESULT = "\u0001ferry-shell-result ";
    private static final char SEPARATOR = '\u001f';
    private static final List<String> JVM_OPTIONS = List.of(
            "--enable-native-access=ALL-UNNAMED",
            "-XX:+UseSerialGC",
            "-Xms32m",
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            "-Xshare:auto",
            "-Dlogback.configurationFile=logback.xml",
            "-Dferry.log.level=WARN");

    private final List<String> command;
    private Process process;
    private Writer requests;
    private BlockingQueue<String> answers;
    private boolean closed;

    /**
     * A shell started (on first use) with {@code wrapper} before its command line, e.g. {@code ip
     * netns exec NS}; {@code classPath} must hold this class, the CLI and any tool it runs.
     */
    public ControlShell(List<String> wrapper, String classPath) {
        List<String> c = new ArrayList<>(wrapper);
        c.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        c.addAll(JVM_OPTIONS);
        c.addAll(List.of("-cp", classPath, ControlShell.class.getName()));
        this.command = List.copyOf(c);
    }

    /** {@code ferry ARGS}, as {@link NetnsCluster#cli} would print it, within {@code timeout}. */
    public CommandResult cli(Duration timeout, List<String> args) {
        return run(timeout, CLI, args);
    }

    /**
     * Runs {@code main(args)} of {@code mainClass} in the shell; exit code 0 when it returns, 1 when
     * it throws (its stack trace on stderr), -1 and {@code timedOut} when it outlived {@code timeout}.
     */
    public synchronized CommandResult run(Duration timeout, String mainClass, List<String> args) {
        List<String> described = new ArrayList<>(List.of("(control shell)", mainClass));
        described.addAll(args);
        if (closed) {
            return new CommandResult(described, 1, "", "the control shell is closed", false);
        }
        StringBuilder line = new StringBuilder(mainClass);
        for (String a : args) {
            if (a.indexOf(SEPARATOR) >= 0 || a.indexOf('\n') >= 0) {
                throw new IllegalArgumentException("an argument with a line break or \\u001f: " + a);
            }
            line.append(SEPARATOR).append(a);
        }
        try {
            ensureStarted();
            requests.write(line.append('\n').toString());
            requests.flush();
            long deadline = System.nanoTime() + timeout.toNanos();
            while (true) {
                long left = deadline - System.nanoTime();
                String answer = left <= 0 ? null : answers.poll(left, TimeUnit.NANOSECONDS);
                if (answer == null) {
                    stop();
                    return new CommandResult(described, -1, "", "", true);
                }
                if (answer.isEmpty()) { // end of the shell's output: it died (a tool's System.exit)
                    stop();
                    return new CommandResult(described, 1, "", "the control shell ended during the request", false);
                }
                if (answer.startsWith(RESULT)) {
                    String[] f = answer.substring(RESULT.length()).split(" ", -1);
                    return new CommandResult(described, Integer.parseInt(f[0]), decode(f[1]), decode(f[2]), false);
                }
                // anything else the JVM printed outside a request (a JVM warning) is not an answer
            }
        } catch (IOException e) {
            stop();
            return new CommandResult(described, 1, "", "the control shell: " + e, false);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            stop();
            return new CommandResult(described, -1, "", "interrupted", true);
        }
    }

    private void ensureStarted() throws IOException {
        if (process != null && process.isAlive()) {
            return;
        }
        stop();
        Process p = new ProcessBuilder(command)
                .redirectError(ProcessBuilder.Redirect.DISCARD)
                .start();
        BlockingQueue<String> q = new LinkedBlockingQueue<>();
        Thread.ofPlatform().daemon().name("control-shell-reader").start(() -> {
            try (BufferedReader r =
                    new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                for (String l; (l = r.readLine()) != null; ) {
                    q.add(l);
                }
            } catch (IOException e) {
                // the process ended: said below
            }
            q.add("");
        });
        process = p;
        answers = q;
        requests = new OutputStreamWriter(p.getOutputStream(), StandardCharsets.UTF_8);
    }

    private void stop() {
        Process p = process;
        process = null;
        if (p != null) {
            p.destroyForcibly();
            try {
                p.waitFor(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    @Override
    public synchronized void close() {
        closed = true;
        stop();
    }

    private static String decode(String b64) {
        return new String(Base64.getDecoder().decode(b64), StandardCharsets.UTF_8);
    }

    private static String encode(ByteArrayOutputStream b) {
        return Base64.getEncoder().encodeToString(b.toByteArray());
    }

    /** The shell's side: one request a line on stdin, one answer line on stdout; ends at EOF. */
    public static void main(String[] args) throws IOException {
        PrintStream answers = System.out;
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line; (line = in.readLine()) != null; ) {
            List<String> parts = new ArrayList<>(List.of(line.split(String.valueOf(SEPARATOR), -1)));
            String main = parts.removeFirst();
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            PrintStream o = new PrintStream(out, true, StandardCharsets.UTF_8);
            PrintStream e = new PrintStream(err, true, StandardCharsets.UTF_8);
            PrintStream savedErr = System.err;
            System.setOut(o);
            System.setErr(e);
            int exit;
            try {
                exit = invoke(main, parts.toArray(String[]::new), o, e);
            } catch (Throwable t) {
                t.printStackTrace(e);
                exit = 1;
            } finally {
                o.flush();
                e.flush();
                System.setOut(answers);
                System.setErr(savedErr);
            }
            answers.println(RESULT + exit + " " + encode(out) + " " + encode(err));
            answers.flush();
        }
    }

    private static int invoke(String main, String[] args, PrintStream out, PrintStream err) throws Throwable {
        if (main.equals(CLI)) {
            // The CLI's own command line with its output captured: what `ferry ARGS` prints.
            picocli.CommandLine cmd = dev.ferry.cli.Main.commandLine();
            cmd.setOut(new PrintWriter(out, true, StandardCharsets.UTF_8));
            cmd.setErr(new PrintWriter(err, true, StandardCharsets.UTF_8));
            return dev.ferry.cli.Main.execute(cmd, args);
        }
        try {
            Class.forName(main).getMethod("main", String[].class).invoke(null, (Object) args);
            return 0;
        } catch (java.lang.reflect.InvocationTargetException ite) {
            throw ite.getCause();
        }
    }
}
