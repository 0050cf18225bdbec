package dev.ferry.cli;

import dev.ferry.agent.client.AgentCallException;
import java.io.PrintWriter;
import picocli.CommandLine;

/** Entry point of the `ferry` command. */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        // Daemons log what they do; commands print results and keep logs to warnings.
        boolean daemon = args.length > 0 && (args[0].equals("agent") || args[0].equals("coordinator"));
        if (System.getProperty("ferry.log.level") == null) {
            System.setProperty("ferry.log.level", daemon ? "INFO" : "WARN");
        }
        System.exit(run(args));
    }

    public static int run(String... args) {
        CommandLine cmd = commandLine();
        return cmd.execute(args);
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
