package dev.ferry.chaos.workload;

import dev.ferry.chaos.history.Event.Op;
import dev.ferry.chaos.history.Event.OpType;
import dev.ferry.chaos.history.History;
import dev.ferry.testkit.netns.CommandResult;
import dev.ferry.testkit.netns.NetnsCluster;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A workload client, Jepsen's: runs one operator command at a time on the control host
 * ({@code ferry migrate}, {@code vm create}, {@code host drain}, ...) and writes its invocation and
 * completion to the history: {@code OK} on exit 0, {@code FAIL} when the command says the operation
 * failed (exit 1 with an answer), {@code INFO} when nobody knows (timed out, no coordinator).
 */
public final class Client {
    private final NetnsCluster cluster;
    private final History history;
    private final String name;

    public Client(NetnsCluster cluster, History history, String name) {
        this.cluster = cluster;
        this.history = history;
        this.name = name;
    }

    /** The outcome of one operation. */
    public record Result(OpType type, CommandResult command) {
        public boolean ok() {
            return type == OpType.OK;
        }
    }

    public Result migrate(String vm, String to, String... extra) {
        return migrateWithin(Duration.ofMinutes(3), vm, to, extra);
    }

    /**
     * A migration whose command is killed after {@code patience} if it has not ended (an operator
     * whose terminal or client machine died): its reply is lost and its outcome unknown.
     */
    public Result migrateWithin(Duration patience, String vm, String to, String... extra) {
        List<String> args = new ArrayList<>(List.of("migrate", vm));
        if (to != null) {
            args.addAll(List.of("--to", to));
        }
        args.addAll(List.of(extra));
        return run("migrate", kv("vm", vm, "to", to == null ? "" : to), args, patience);
    }

    public Result cancel(String vm) {
        return run("cancel", kv("vm", vm), List.of("cancel", vm), Duration.ofSeconds(60));
    }

    public Result create(String vm, String host, String memory, String... extra) {
        List<String> args = new ArrayList<>(List.of("vm", "create", vm, "--memory", memory));
        if (host != null) {
            args.addAll(List.of("--host", host));
        }
        args.addAll(List.of(extra));
        return run("create", kv("vm", vm, "host", host == null ? "" : host), args, Duration.ofMinutes(2));
    }

    public Result vm(String verb, String vm) {
        return run(verb, kv("vm", vm), List.of("vm", verb, vm), Duration.ofMinutes(2));
    }

    /**
     * The runner's clean-up between runs: {@code ferry vm delete VM} in the control host's shell
     * (recorded like any operation), not a JVM of its own: outside the judged window, and paid once
     * per VM per run.
     */
    public Result deleteAfterRun(String vm) {
        return run("delete", kv("vm", vm), List.of("vm", "delete", vm), Duration.ofMinutes(2), true);
    }

    public Result drain(String host) {
        return run("drain", kv("host", host), List.of("host", "drain", host, "--wait"), Duration.ofMinutes(4));
    }

    public Result activate(String host) {
        return run("activate", kv("host", host), List.of("host", "activate", host), Duration.ofMinutes(1));
    }

    private Result run(String f, Map<String, String> args, List<String> command, Duration timeout) {
        return run(f, args, command, timeout, false);
    }

    private Result run(String f, Map<String, String> args, List<String> command, Duration timeout, boolean inShell) {
        Op invoke = history.invoke(name, f, args);
        CommandResult r = inShell ? cluster.cliInShell(timeout, command) : cluster.cli(timeout, command);
        String err = r.stderr()
                .lines()
                .filter(l -> !l.startsWith("WARNING:"))
                .collect(java.util.stream.Collectors.joining("\n"));
        OpType type;
        if (r.ok()) {
            type = OpType.OK;
        } else if (r.timedOut() || r.exitCode() != 1 || unknown(err)) {
            type = OpType.INFO;
        } else {
            type = OpType.FAIL;
        }
        // The JVM's own warnings (sun.misc.Unsafe from a dependency) are not the command's answer.
        String said = (err.isBlank() ? r.stdout() : err).strip();
        history.complete(invoke, type, said.length() > 200 ? said.substring(0, 200) : said);
        return new Result(type, r);
    }

    /** Answers that leave the outcome open: the command could not tell whether it happened. */
    private static boolean unknown(String stderr) {
        String s = stderr.toLowerCase(java.util.Locale.ROOT);
        return s.contains("unavailable")
                || s.contains("deadline")
                || s.contains("unknown")
                || s.contains("no coordinator");
    }

    private static Map<String, String> kv(String... kv) {
        Map<String, String> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put(kv[i], kv[i + 1]);
        }
        return m;
    }
}
