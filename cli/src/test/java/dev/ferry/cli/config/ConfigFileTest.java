package dev.ferry.cli.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cli.Main;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;

class ConfigFileTest {
    private static final Set<String> DAEMONS = Set.of("agent", "coordinator");

    @TempDir
    Path dir;

    private final CommandLine root = Main.commandLine();

    private CommandSpec agent() {
        return root.getSubcommands().get("agent").getCommandSpec();
    }

    @Test
    void linesBecomeArgumentsAndCommentsAndBlankLinesAreSkipped() {
        List<ConfigFile.Entry> e = ConfigFile.parse(
                "a.conf", "# the agent\n\nhost-id = h1\n  listen=0.0.0.0:7070  \nlabel = rack=a\nlabel = zone=b\n");
        assertEquals(
                List.of("--host-id=h1", "--listen=0.0.0.0:7070", "--label=rack=a", "--label=zone=b"),
                ConfigFile.toArgs(agent(), "a.conf", e, List.of()));
    }

    @Test
    void aMisspeltOptionIsAnErrorNamingTheFileTheLineAndTheName() {
        List<ConfigFile.Entry> e = ConfigFile.parse("/etc/ferry/agent.conf", "host-id = h1\nhostid = h2\n");
        ConfigFileException x = assertThrows(
                ConfigFileException.class, () -> ConfigFile.toArgs(agent(), "/etc/ferry/agent.conf", e, List.of()));
        assertTrue(
                x.getMessage().startsWith("/etc/ferry/agent.conf line 2: `ferry agent` has no option 'hostid'"),
                x.getMessage());
        assertTrue(x.getMessage().contains("host-id"), "the known names are listed: " + x.getMessage());
    }

    @Test
    void theCommandLineWinsOverTheFileAndARepeatableOptionIsReplacedNotAddedTo() {
        List<ConfigFile.Entry> e =
                ConfigFile.parse("a.conf", "host-id = h1\nlisten = 0.0.0.0:7070\nlabel = rack=a\nlabel = zone=b\n");
        assertEquals(
                List.of("--host-id=h1"),
                ConfigFile.toArgs(agent(), "a.conf", e, List.of("--listen", "127.0.0.1:0", "--label=rack=c")));
    }

    @Test
    void aFlagTakesTrueOrFalseAndNothingElse() {
        assertEquals(
                List.of("--single-machine"),
                ConfigFile.toArgs(agent(), "a", ConfigFile.parse("a", "single-machine = true"), List.of()));
        assertEquals(
                List.of(), ConfigFile.toArgs(agent(), "a", ConfigFile.parse("a", "single-machine = false"), List.of()));
        ConfigFileException x = assertThrows(
                ConfigFileException.class,
                () -> ConfigFile.toArgs(agent(), "a", ConfigFile.parse("a", "single-machine = yes"), List.of()));
        assertTrue(x.getMessage().contains("true or false"), x.getMessage());
    }

    @Test
    void malformedLinesAreRefusedWithTheirLineNumber() {
        assertTrue(assertThrows(ConfigFileException.class, () -> ConfigFile.parse("f", "host-id h1"))
                .getMessage()
                .startsWith("f line 1: expected NAME = VALUE"));
        assertTrue(assertThrows(ConfigFileException.class, () -> ConfigFile.parse("f", "\n--host-id = h1"))
                .getMessage()
                .contains("line 2: write the option's name without dashes ('host-id = ...')"));
        assertTrue(assertThrows(ConfigFileException.class, () -> ConfigFile.parse("f", "host-id =  "))
                .getMessage()
                .contains("host-id has no value"));
        // A config file cannot name another one (no include chains to audit).
        assertThrows(
                ConfigFileException.class,
                () -> ConfigFile.toArgs(agent(), "f", ConfigFile.parse("f", "config = /etc/x"), List.of()));
    }

    @Test
    void theConfigFileOptionsGoBeforeTheCommandLinesOwn() throws Exception {
        Path f = Files.writeString(dir.resolve("agent.conf"), "host-id = h1\ndata-dir = /var/lib/ferry\n");
        String[] args = {"agent", "--config", f.toString(), "--listen", "127.0.0.1:0"};
        assertEquals(
                List.of(
                        "agent",
                        "--host-id=h1",
                        "--data-dir=/var/lib/ferry",
                        "--config",
                        f.toString(),
                        "--listen",
                        "127.0.0.1:0"),
                List.of(ConfigFile.expand(root.getCommandSpec(), DAEMONS, args)));
        // Other commands are left alone, and so is a daemon without --config.
        String[] vm = {"vm", "list", "--config", f.toString()};
        assertEquals(List.of(vm), List.of(ConfigFile.expand(root.getCommandSpec(), DAEMONS, vm)));
    }

    @Test
    void aMissingFileIsAnError() {
        ConfigFileException x = assertThrows(
                ConfigFileException.class,
                () -> ConfigFile.expand(
                        root.getCommandSpec(), DAEMONS, new String[] {"agent", "--config=" + dir.resolve("absent.conf")
                        }));
        assertTrue(x.getMessage().endsWith("absent.conf: no such file"), x.getMessage());
    }

    /** The examples the release tarball ships must be valid for the commands they are for. */
    @Test
    void theShippedExampleConfigFilesAreValid() {
        for (String daemon : DAEMONS) {
            Path example = Path.of("..", "dist", "etc", daemon + ".conf");
            List<ConfigFile.Entry> e = ConfigFile.read(example);
            assertTrue(e.size() >= 5, example + " has too few options");
            List<String> args = ConfigFile.toArgs(
                    root.getSubcommands().get(daemon).getCommandSpec(), example.toString(), e, List.of());
            // And picocli parses them (types, enums, required options).
            new CommandLine(root.getSubcommands().get(daemon).getCommand()).parseArgs(args.toArray(String[]::new));
        }
    }
}
