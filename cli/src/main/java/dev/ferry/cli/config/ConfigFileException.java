package dev.ferry.cli.config;

/** A config file that cannot be used: missing, unreadable, malformed, or naming an unknown option. */
public final class ConfigFileException extends RuntimeException {
    public ConfigFileException(String message) {
        super(message);
    }
}
