package dev.ferry.cli;

import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.JsonEncoder;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Option;

/**
 * The daemons' {@code --log-format text|json}. Both go to stderr, which journald keeps under
 * systemd. JSON is one object per line (Logback's JSON encoder): timestamp, level, thread, logger,
 * the sentence ({@code formattedMessage}), the exception if any, the fields of the operation the
 * line belongs to ({@code mdc}: vm, migration, intent, kind, epoch, source, target; see {@link
 * dev.ferry.logs.LogContext}) and the daemon's own identity ({@code context.properties.host}), so
 * a log pipeline selects a VM's or a migration's lines by field, not by parsing sentences.
 */
final class LogFormatOption {
    enum Format {
        text,
        json
    }

    @Option(
            names = "--log-format",
            paramLabel = "FORMAT",
            defaultValue = "text",
            description = "Log lines on stderr as text or json (one object per line, with vm, migration, intent, "
                    + "epoch and host as fields). Default: ${DEFAULT-VALUE}.")
    Format format = Format.text;

    /** Switches this process's log output to {@code --log-format}; {@code host} names the daemon. */
    void apply(String host) {
        if (format == Format.json && LoggerFactory.getILoggerFactory() instanceof LoggerContext ctx) {
            useJson(ctx, host);
        }
    }

    static void useJson(LoggerContext ctx, String host) {
        ctx.putProperty("host", host);
        ch.qos.logback.classic.Logger root = ctx.getLogger(Logger.ROOT_LOGGER_NAME);
        JsonEncoder encoder = new JsonEncoder();
        encoder.setContext(ctx);
        // What a reader needs; not the raw template and its arguments (the sentence is there
        // formatted), nor Logback's sequence numbers and nanoseconds.
        encoder.setWithSequenceNumber(false);
        encoder.setWithNanoseconds(false);
        encoder.setWithMessage(false);
        encoder.setWithArguments(false);
        encoder.setWithFormattedMessage(true);
        encoder.start();
        ConsoleAppender<ILoggingEvent> json = new ConsoleAppender<>();
        json.setContext(ctx);
        json.setName("STDERR");
        json.setTarget("System.err");
        json.setEncoder(encoder);
        json.start();
        var text = root.getAppender("STDERR");
        root.addAppender(json);
        if (text != null && text != json) {
            root.detachAppender(text);
            text.stop();
        }
    }
}
