package dev.ferry.cli;

import dev.ferry.cluster.client.ConsoleFollower;
import dev.ferry.cluster.client.CoordinatorClient;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code ferry vm console VM}: the guest's serial console, wherever it runs, through the
 * coordinator. Interactive on a terminal (raw mode; Ctrl-] detaches), output only with {@code
 * --follow}, the history alone with {@code --history}; the history shown first is the last lines
 * ({@code --tail}) or what was printed since a time ({@code --since}).
 */
@Command(
        name = "console",
        description = "Attach to a VM's serial console wherever it runs (Ctrl-] detaches); it follows the VM"
                + " across migrations and restarts.")
final class ConsoleCommand implements Runnable {
    /** Ctrl-], as telnet and virsh console use it. */
    static final byte DETACH = 0x1d;

    @Mixin
    ClusterOption cluster;

    @Parameters(index = "0", paramLabel = "VM")
    String vm;

    @Option(names = "--follow", description = "Print the output only; send nothing to the guest (what viewers may do).")
    boolean follow;

    @Option(
            names = "--tail",
            paramLabel = "N|all",
            description = "History to print first: the last N lines (default 20), or all the history kept (the last"
                    + " 1 to 2 MiB per VM). Instead of --since.")
    String tail;

    @Option(
            names = "--since",
            paramLabel = "WHEN",
            description = "History to print first: what the guest printed since WHEN, a time ago (90s, 10m, 2h, 1d,"
                    + " 1h30m) or a time (2026-12-07T10:00:00Z, or local 2026-12-07T10:00), to about a second,"
                    + " from the start of a line. Instead of --tail.")
    String since;

    @Option(names = "--history", description = "Print the history (see --tail) and exit.")
    boolean history;

    @Override
    public void run() {
        if (since != null && tail != null) {
            throw new CliException("--since and --tail both choose where the history starts: give one", 2);
        }
        int lines = tailLines(tail == null ? "20" : tail);
        long sinceMs =
                since == null ? 0 : sinceMillis(since, java.time.Instant.now(), java.time.ZoneId.systemDefault());
        boolean write = !follow && !history;
        boolean tty = System.console() != null && new File("/dev/tty").canRead();
        PrintStream out = System.out;
        Terminal term = write && tty ? Terminal.raw() : Terminal.NONE;
        String eol = term == Terminal.NONE ? "\n" : "\r\n";
        try (CoordinatorClient c = cluster.client()) {
            ConsoleFollower f = new ConsoleFollower(c, vm, lines, sinceMs, write, history, new ConsoleFollower.Sink() {
                @Override
                public void output(byte[] data) {
                    out.write(data, 0, data.length);
                    out.flush();
                }

                @Override
                public void note(String line) {
                    System.err.print(line + eol);
                    System.err.flush();
                }
            });
            if (write) {
                System.err.print("-- console of " + vm + (tty ? "; Ctrl-] detaches" : "") + eol);
                Thread.ofPlatform().daemon().name("ferry-console-stdin").start(() -> pumpInput(System.in, f));
            }
            try {
                f.run();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                f.close();
            }
        } finally {
            term.restore();
            if (term != Terminal.NONE) {
                System.err.println();
            }
        }
    }

    static int tailLines(String tail) {
        if ("all".equals(tail)) {
            return -1;
        }
        try {
            int n = Integer.parseInt(tail);
            if (n < 0) {
                throw new NumberFormatException();
            }
            return n;
        } catch (NumberFormatException e) {
            throw new CliException("--tail takes a number of lines or 'all', not '" + tail + "'", 2);
        }
    }

    private static final java.util.regex.Pattern AGO = java.util.regex.Pattern.compile("(?:\\d+[smhd])+");
    private static final java.util.regex.Pattern AGO_PART = java.util.regex.Pattern.compile("(\\d+)([smhd])");

    /**
     * Pure: {@code --since}'s argument as milliseconds since the epoch. A time ago ({@code 10m},
     * {@code 1h30m}: s, m, h, d), an instant or offset time ({@code 2026-12-07T10:00:00Z}), or a
     * local date-time in {@code zone}. A time ahead of {@code now} is refused: it would print nothing.
     */
    static long sinceMillis(String when, java.time.Instant now, java.time.ZoneId zone) {
        String w = when.strip();
        java.time.Instant at;
        if (AGO.matcher(w).matches()) {
            long seconds = 0;
            java.util.regex.Matcher m = AGO_PART.matcher(w);
            try {
                while (m.find()) {
                    long n = Long.parseLong(m.group(1));
                    long unit = switch (m.group(2)) {
                        case "s" -> 1;
                        case "m" -> 60;
                        case "h" -> 3600;
                        default -> 86400;
                    };
                    seconds = Math.addExact(seconds, Math.multiplyExact(n, unit));
                }
                at = now.minusSeconds(seconds);
            } catch (ArithmeticException | NumberFormatException | java.time.DateTimeException e) {
                throw new CliException("--since " + when + ": too long ago", 2);
            }
        } else {
            try {
                at = java.time.OffsetDateTime.parse(w).toInstant();
            } catch (java.time.format.DateTimeParseException e) {
                try {
                    at = java.time.LocalDateTime.parse(w).atZone(zone).toInstant();
                } catch (java.time.format.DateTimeParseException e2) {
                    throw new CliException(
                            "--since takes a time ago (90s, 10m, 2h, 1d, 1h30m) or a time (2026-12-07T10:00:00Z,"
                                    + " 2026-12-07T10:00), not '" + when + "'",
                            2);
                }
            }
        }
        if (at.isAfter(now)) {
            throw new CliException("--since " + when + " is in the future (" + at + ")", 2);
        }
        return Math.max(1, at.toEpochMilli()); // 0 on the wire means "not asked"
    }

    /**
     * After piped input ends, how long the output is still followed: long enough for what the guest
     * answers at once (`echo uname -a | ferry vm console web`) to be printed.
     */
    static final long AFTER_INPUT_MS = 1000;

    /** Stdin to the guest until Ctrl-] (detach now) or the end of input (detach a moment later). */
    static void pumpInput(InputStream in, ConsoleFollower f) {
        byte[] buf = new byte[4096];
        try {
            while (true) {
                int n = in.read(buf);
                if (n < 0) {
                    Thread.sleep(AFTER_INPUT_MS);
                    break;
                }
                int cut = indexOf(buf, n, DETACH);
                if (cut >= 0) {
                    if (cut > 0) {
                        f.input(Arrays.copyOf(buf, cut));
                    }
                    break;
                }
                f.input(Arrays.copyOf(buf, n));
            }
        } catch (IOException e) {
            // the terminal went away: detach
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        f.close();
    }

    static int indexOf(byte[] b, int n, byte v) {
        for (int i = 0; i < n; i++) {
            if (b[i] == v) {
                return i;
            }
        }
        return -1;
    }

    /** The controlling terminal in raw mode (via stty), restored on detach and at JVM exit. */
    static final class Terminal {
        static final Terminal NONE = new Terminal(null);
        private final String saved;
        private boolean restored;

        private Terminal(String saved) {
            this.saved = saved;
        }

        static Terminal raw() {
            try {
                String saved = stty("-g").trim();
                stty("raw", "-echo");
                Terminal t = new Terminal(saved);
                Runtime.getRuntime().addShutdownHook(new Thread(t::restore));
                return t;
            } catch (IOException e) {
                throw new CliException("cannot put the terminal in raw mode: " + e.getMessage());
            }
        }

        synchronized void restore() {
            if (saved == null || restored) {
                return;
            }
            restored = true;
            try {
                stty(saved);
            } catch (IOException e) {
                System.err.println("cannot restore the terminal (run `stty sane`): " + e.getMessage());
            }
        }

        private static String stty(String... args) throws IOException {
            String[] cmd = new String[args.length + 1];
            cmd[0] = "stty";
            System.arraycopy(args, 0, cmd, 1, args.length);
            Process p = new ProcessBuilder(cmd)
                    .redirectInput(new File("/dev/tty"))
                    .redirectError(ProcessBuilder.Redirect.INHERIT)
                    .start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            try {
                if (!p.waitFor(5, TimeUnit.SECONDS) || p.exitValue() != 0) {
                    throw new IOException("stty " + String.join(" ", args) + " failed");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted", e);
            }
            return out;
        }
    }
}
