package dev.ferry.cli.config;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * A daemon's options in a file ({@code ferry agent --config /etc/ferry/agent.conf}), so a systemd
 * unit's {@code ExecStart} stays one short line and the host's settings live in /etc.
 *
 * <p>The format: one option per line, {@code NAME = VALUE}, NAME being the long option without its
 * two dashes ({@code host-id = h1}); {@code #} starts a comment line; a repeatable option ({@code
 * label}, {@code storage-root}) takes one line per value; a flag takes {@code true} or {@code
 * false}. Options given on the command line win: every line of a name the command line also gives
 * is dropped (a repeatable option's command-line values replace the file's, they do not add to
 * them). A name the command does not have is an error naming the file, the line and the name: a
 * misspelt option must not silently fall back to a default.
 *
 * <p>The file becomes arguments ({@code --NAME=VALUE}) in front of the command line's, so the
 * command's own parsing and validation apply to them exactly as to flags, with one code path.
 */
public final class ConfigFile {
    /** The option naming the file; accepted by the daemons and handled here, before parsing. */
    public static final String OPTION = "--config";

    private static final Pattern NAME = Pattern.compile("[a-z0-9][a-z0-9-]*");
    private static final long MAX_BYTES = 1 << 20;

    /** One line of the file. */
    public record Entry(String name, String value, int line) {}

    private ConfigFile() {}

    /** Reads and parses {@code file} (syntax only; names are checked by {@link #toArgs}). */
    public static List<Entry> read(Path file) {
        String text;
        try {
            if (Files.size(file) > MAX_BYTES) {
                throw new ConfigFileException(file + ": larger than 1 MiB, not a config file");
            }
            text = StandardCharsets.UTF_8
                    .newDecoder()
                    .decode(java.nio.ByteBuffer.wrap(Files.readAllBytes(file)))
                    .toString();
        } catch (NoSuchFileException e) {
            throw new ConfigFileException(file + ": no such file");
        } catch (CharacterCodingException e) {
            throw new ConfigFileException(file + ": not UTF-8 text");
        } catch (IOException e) {
            throw new ConfigFileException(file + ": cannot read it: " + e.getMessage());
        }
        return parse(file.toString(), text);
    }

    /** Parses {@code text}; {@code source} names it in errors. */
    public static List<Entry> parse(String source, String text) {
        List<Entry> entries = new ArrayList<>();
        String[] lines = text.split("\n", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i].strip();
            int n = i + 1;
            if (line.isEmpty() || line.startsWith("#")) {
                continue;
            }
            int eq = line.indexOf('=');
            if (eq < 0) {
                throw new ConfigFileException(source + " line " + n + ": expected NAME = VALUE, got '" + line + "'");
            }
            String name = line.substring(0, eq).strip();
            String value = line.substring(eq + 1).strip();
            if (name.startsWith("-")) {
                throw new ConfigFileException(source + " line " + n + ": write the option's name without dashes ('"
                        + name.replaceFirst("^-+", "") + " = ...')");
            }
            if (!NAME.matcher(name).matches()) {
                throw new ConfigFileException(source + " line " + n + ": '" + name + "' is not an option name");
            }
            if (value.isEmpty()) {
                throw new ConfigFileException(source + " line " + n + ": " + name + " has no value");
            }
            entries.add(new Entry(name, value, n));
        }
        return entries;
    }

    /**
     * The arguments {@code entries} stand for, for the command {@code spec}, leaving out every
     * option that {@code commandLine} (the arguments after the subcommand's name) gives itself.
     */
    public static List<String> toArgs(CommandSpec spec, String source, List<Entry> entries, List<String> commandLine) {
        List<String> args = new ArrayList<>();
        for (Entry e : entries) {
            String flag = "--" + e.name();
            OptionSpec option = spec.findOption(flag);
            if (option == null || flag.equals(OPTION)) {
                throw new ConfigFileException(source + " line " + e.line() + ": `ferry " + spec.name()
                        + "` has no option '" + e.name() + "' (known: " + known(spec) + ")");
            }
            if (given(option, commandLine)) {
                continue;
            }
            if (option.arity().max() == 0) {
                switch (e.value()) {
                    case "true" -> args.add(flag);
                    case "false" -> {}
                    default ->
                        throw new ConfigFileException(source + " line " + e.line() + ": " + e.name()
                                + " is a flag: true or false, not '" + e.value() + "'");
                }
            } else {
                // One argument, so a value that starts with '-' or holds spaces stays one value.
                args.add(flag + "=" + e.value());
            }
        }
        return args;
    }

    /**
     * {@code args} (a whole `ferry` command line) with the options of the config file it names put
     * in front of the subcommand's own; unchanged when it names none. Only {@code daemons} take one.
     */
    public static String[] expand(CommandSpec root, Set<String> daemons, String[] args) {
        if (args.length == 0 || !daemons.contains(args[0])) {
            return args;
        }
        List<String> rest = List.of(args).subList(1, args.length);
        Path file = null;
        for (int i = 0; i < rest.size(); i++) {
            String a = rest.get(i);
            if (a.equals("--")) {
                break;
            }
            if (a.equals(OPTION)) {
                if (i + 1 >= rest.size()) {
                    throw new ConfigFileException(OPTION + " needs a FILE");
                }
                file = Path.of(rest.get(i + 1));
            } else if (a.startsWith(OPTION + "=")) {
                file = Path.of(a.substring(OPTION.length() + 1));
            }
        }
        if (file == null) {
            return args;
        }
        CommandSpec sub = root.subcommands().get(args[0]).getCommandSpec();
        List<String> out = new ArrayList<>();
        out.add(args[0]);
        out.addAll(toArgs(sub, file.toString(), read(file), rest));
        out.addAll(rest);
        return out.toArray(String[]::new);
    }

    private static boolean given(OptionSpec option, List<String> commandLine) {
        for (String a : commandLine) {
            if (a.equals("--")) {
                return false;
            }
            for (String n : option.names()) {
                if (a.equals(n) || a.startsWith(n + "=")) {
                    return true;
                }
            }
        }
        return false;
    }

    private static String known(CommandSpec spec) {
        return spec.options().stream()
                .map(OptionSpec::longestName)
                .filter(n -> n.startsWith("--") && !n.equals(OPTION) && !n.equals("--help") && !n.equals("--version"))
                .map(n -> n.substring(2))
                .sorted()
                .collect(Collectors.joining(", "));
    }
}
