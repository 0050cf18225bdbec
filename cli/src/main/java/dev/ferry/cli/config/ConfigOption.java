package dev.ferry.cli.config;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/**
 * The daemons' {@code --config FILE}. Its value is read before parsing ({@link ConfigFile#expand});
 * the option is declared so that help lists it and parsing accepts it.
 */
public final class ConfigOption {
    @Option(
            names = ConfigFile.OPTION,
            paramLabel = "FILE",
            description = "Read options from FILE: one NAME = VALUE per line (NAME without its dashes; a "
                    + "repeatable option takes one line per value; a flag true or false). Flags on the command "
                    + "line win; an unknown NAME is an error. Example: etc/*.conf of the release tarball.")
    Path config;

    /** Logs which file the options came from, if any: an operator reading the journal asks first. */
    public void logSource(String daemon) {
        if (config != null) {
            org.slf4j.LoggerFactory.getLogger(ConfigOption.class)
                    .info("{}: options from {} (flags on the command line win)", daemon, config.toAbsolutePath());
        }
    }
}
