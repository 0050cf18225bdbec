package dev.ferry.cli;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cli.config.ConfigFile;
import dev.ferry.cli.config.ConfigFileException;
import java.io.PrintWriter;
import java.util.Set;
import picocli.CommandLine;

/** Entry point of the `ferry` command. */
public final class Main {
    /** The commands that take {@code --config FILE}. */
    static final Set<String> DAEMONS = Set.of("agent", "coordinator");

    private Main() {}

    public static void main(String[] args) {
        // Daemons log what they do; commands print results and keep logs to warnings.
        boolean daemon = args.length > 0 && DAEMONS.contains(args[0]);
        if (System.getProperty("ferry.log.level") == null) {
            System.setProperty("ferry.log.level", daemon ? "INFO" : "WARN");
        }
        System.exit(run(args));
    }

    public static int run(String... args) {
        return execute(commandLine(), args);
    }

    /**
     * Runs {@code args} on {@code cmd} (from {@link #commandLine()}), a daemon's {@code --config}
     * file read first.
     */
    public static int execute(CommandLine cmd, String... args) {
        String[] expanded;
        try {
            expanded = ConfigFile.expand(cmd.getCommandSpec(), DAEMONS, args);
        } catch (ConfigFileException e) {
            cmd.getErr().println("ferry: " + e.getMessage());
            cmd.getErr().flush();
            return 2;
        }
        return cmd.execute(expanded);
    }

    public static CommandLine commandLine() {
        CommandLine cmd = new CommandLine(new FerryCommand());
        // `ferry chaos` lives in chaos-tests (which builds on the CLI); the launcher puts it on the
        // class path for that command only.
        try {
            cmd.addSubcommand(Class.forName("dev.ferry.chaos.runner.ChaosCommand")
                    .getDeclaredConstructor()
                    .newInstance());
        } catch (ReflectiveOperationException | LinkageError e) {
            // not on the class path: the plain CLI
        }
        cmd.setExecutionExceptionHandler((e, commandLine, parseResult) -> {
            PrintWriter err = commandLine.getErr();
            boolean debug = System.getenv("FERRY_DEBUG") != null;
            if (e instanceof CliException ce) {
                err.println("ferry: " + ce.getMessage());
                err.flush();
                return ce.exitCode();
            }
            if (e instanceof dev.ferry.cluster.client.CoordinatorCallException ce) {
                err.println("ferry: " + ce.getMessage());
                String id = RequestIdOption.lastSent();
                if (id != null
                        && (ce.code() == io.grpc.Status.Code.DEADLINE_EXCEEDED
                                || ce.code() == io.grpc.Status.Code.UNAVAILABLE)) {
                    // The request may have run: only the same id asks without acting twice.
                    err.println("ferry: the request's outcome is unknown; run the same command again with "
                            + "--request-id " + id + " to learn it (the cluster runs one id at most once)");
                }
                err.flush();
                return ce.code() == io.grpc.Status.Code.INVALID_ARGUMENT ? 2 : 1;
            }
            if (e instanceof dev.ferry.pki.PkiException pe) {
                err.println("ferry: " + pe.getMessage());
                err.flush();
                return 1;
            }
            if (e instanceof AgentCallException ae) {
                err.println("ferry: " + ae.getMessage());
                err.flush();
                return 1;
            }
            if (e instanceof IllegalArgumentException iae) {
                err.println("ferry: " + iae.getMessage());
                err.flush();
                return 2;
            }
            err.println("ferry: internal error: " + e + (debug ? "" : " (set FERRY_DEBUG=1 for the stack trace)"));
            if (debug) {
                e.printStackTrace(err);
            }
            err.flush();
            return 1;
        });
        cmd.setParameterExceptionHandler((ex, args) -> {
            PrintWriter err = ex.getCommandLine().getErr();
            err.println("ferry: " + ex.getMessage());
            err.println("Try '" + ex.getCommandLine().getCommandSpec().qualifiedName() + " --help'.");
            err.flush();
            return 2;
        });
        return cmd;
    }
}
