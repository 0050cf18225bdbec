package dev.ferry.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.logs.LogContext;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;

/** `--log-format json`: one object per line with the operation's fields and the daemon's identity. */
class LogFormatOptionTest {
    @Test
    void aJsonLineCarriesTheSentenceTheOperationsFieldsAndTheHost() throws Exception {
        LoggerContext ctx = new LoggerContext();
        // A context of the test's own (the process's stays as it is), on SLF4J's MDC like the process's.
        ctx.setMDCAdapter(org.slf4j.MDC.getMDCAdapter());
        ch.qos.logback.classic.Logger root = ctx.getLogger(Logger.ROOT_LOGGER_NAME);
        PatternLayoutEncoder text = new PatternLayoutEncoder();
        text.setContext(ctx);
        text.setPattern("%msg%n");
        text.start();
        ConsoleAppender<ILoggingEvent> stderr = new ConsoleAppender<>();
        stderr.setContext(ctx);
        stderr.setName("STDERR");
        stderr.setTarget("System.err");
        stderr.setEncoder(text);
        stderr.start();
        root.addAppender(stderr);

        PrintStream old = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setErr(new PrintStream(out, true, StandardCharsets.UTF_8));
        // Logback's console appender takes the stream as it is when the appender starts.
        LogFormatOption.useJson(ctx, "host-1");
        try (LogContext.Scope f =
                LogContext.with(LogContext.VM, "web", LogContext.MIGRATION, "m-7", LogContext.EPOCH, "3")) {
            ctx.getLogger("dev.ferry.agent.OutgoingMigrations").info("migrated {} to {}", "web", "host-2");
        } finally {
            System.setErr(old);
        }
        String[] lines = out.toString(StandardCharsets.UTF_8).strip().split("\n");
        assertEquals(1, lines.length, "one line, only the JSON appender: " + out);
        JsonNode line = new ObjectMapper().readTree(lines[0]);
        assertEquals("INFO", line.path("level").asText(), lines[0]);
        assertEquals("migrated web to host-2", line.path("formattedMessage").asText(), lines[0]);
        assertEquals("web", line.path("mdc").path("vm").asText(), lines[0]);
        assertEquals("m-7", line.path("mdc").path("migration").asText(), lines[0]);
        assertEquals("3", line.path("mdc").path("epoch").asText(), lines[0]);
        assertEquals(
                "host-1", line.path("context").path("properties").path("host").asText(), lines[0]);
        assertTrue(line.path("timestamp").asLong() > 0, lines[0]);
    }
}
