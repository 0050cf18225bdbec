package dev.ferry.testkit.netns;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * The control shell against a real JVM of its own (no namespace needed): it prints what the same
 * command prints as a process, and a tool that hangs, throws or exits costs one request, not the
 * shell's later ones.
 */
class ControlShellTest {
    private final ControlShell shell = new ControlShell(List.of(), System.getProperty("java.class.path"));

    @AfterEach
    void close() {
        shell.close();
    }

    @Test
    void aFerryCommandPrintsWhatItPrintsAsAProcess() {
        List<String> args = List.of("pki", "--help");
        CommandResult inShell = shell.cli(Duration.ofMinutes(1), args);
        List<String> cmd = new java.util.ArrayList<>(Launcher.classpath().cli());
        cmd.addAll(args);
        CommandResult alone = Commands.run(cmd, Map.of(), Duration.ofMinutes(1));
        assertEquals(alone.exitCode(), inShell.exitCode(), inShell.describe());
        assertEquals(alone.stdout(), inShell.stdout());
        assertEquals(alone.stderr(), inShell.stderr());
        // a usage error too: exit 2 and the message on stderr, as the process gives them
        CommandResult wrong = shell.cli(Duration.ofMinutes(1), List.of("vm", "list", "--no-such-flag"));
        assertEquals(2, wrong.exitCode(), wrong.describe());
        assertTrue(wrong.stderr().contains("--no-such-flag"), wrong.describe());
    }

    @Test
    void aToolsOutputAndFailureAreItsOwnRequests() {
        CommandResult ok = shell.run(Duration.ofMinutes(1), Echo.class.getName(), List.of("a b", "", "c"));
        assertEquals(0, ok.exitCode(), ok.describe());
        assertEquals("[a b][][c]\n", ok.stdout());
        CommandResult thrown = shell.run(Duration.ofMinutes(1), Thrower.class.getName(), List.of());
        assertEquals(1, thrown.exitCode());
        assertTrue(thrown.stderr().contains("no ZooKeeper here"), thrown.describe());
        assertEquals(
                ok.stdout(),
                shell.run(Duration.ofMinutes(1), Echo.class.getName(), List.of("a b", "", "c"))
                        .stdout());
    }

    @Test
    void aToolThatHangsOrExitsCostsItsRequestAndTheShellComesBack() {
        CommandResult hung = shell.run(Duration.ofSeconds(2), Sleeper.class.getName(), List.of());
        assertTrue(hung.timedOut(), hung.describe());
        CommandResult exited = shell.run(Duration.ofMinutes(1), Exiter.class.getName(), List.of());
        assertFalse(exited.ok(), exited.describe());
        CommandResult after = shell.run(Duration.ofMinutes(1), Echo.class.getName(), List.of("x"));
        assertEquals("[x]\n", after.stdout(), after.describe());
    }

    @Test
    void aClosedShellRunsNothing() {
        shell.close();
        CommandResult r = shell.run(Duration.ofMinutes(1), Echo.class.getName(), List.of("x"));
        assertFalse(r.ok());
        assertTrue(r.stderr().contains("closed"), r.describe());
    }

    public static final class Echo {
        public static void main(String[] args) {
            StringBuilder b = new StringBuilder();
            for (String a : args) {
                b.append('[').append(a).append(']');
            }
            System.out.println(b);
        }
    }

    public static final class Thrower {
        public static void main(String[] args) {
            throw new IllegalStateException("no ZooKeeper here");
        }
    }

    public static final class Sleeper {
        public static void main(String[] args) throws InterruptedException {
            Thread.sleep(600_000);
        }
    }

    public static final class Exiter {
        public static void main(String[] args) {
            System.exit(3);
        }
    }
}
