package dev.ferry.testkit.netns;

import java.util.List;

/**
 * What a command run by the kit did: its exit code (-1 when it was killed at its deadline), and
 * everything it wrote.
 *
 * @param command the command line as run (including {@code ip netns exec NS} when in a namespace)
 * @param exitCode the exit status; -1 when {@code timedOut}
 * @param stdout standard output, decoded as UTF-8
 * @param stderr standard error, decoded as UTF-8
 * @param timedOut whether the kit killed it at its deadline
 */
public record CommandResult(List<String> command, int exitCode, String stdout, String stderr, boolean timedOut) {
    public CommandResult {
        command = List.copyOf(command);
    }

    public boolean ok() {
        return exitCode == 0 && !timedOut;
    }

    /** One paragraph for an assertion message: the command, how it ended, and its output. */
    public String describe() {
        return String.join(" ", command)
                + (timedOut ? " timed out" : " exited " + exitCode)
                + (stdout.isBlank() ? "" : "\nstdout: " + stdout.strip())
                + (stderr.isBlank() ? "" : "\nstderr: " + stderr.strip());
    }
}
