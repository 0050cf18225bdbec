package dev.ferry.logs;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ThreadFactory;
import org.slf4j.MDC;

/**
 * The fields a log line carries besides its sentence: which VM, migration, intent, epoch it is
 * about. They are SLF4J MDC entries, set for the thread that carries out one operation (a
 * migration's source or destination, an intent's run) and handed to the threads it starts, so
 * that `--log-format json` writes them as fields every line of that operation has (Logback's JSON
 * encoder, its {@code mdc} object) and a log pipeline can select one VM's or one migration's lines
 * without parsing sentences. The sentences keep naming them too: the text format is unchanged.
 */
public final class LogContext {
    public static final String VM = "vm";
    public static final String MIGRATION = "migration";
    public static final String INTENT = "intent";
    public static final String KIND = "kind";
    public static final String EPOCH = "epoch";
    public static final String SOURCE = "source";
    public static final String TARGET = "target";

    private LogContext() {}

    /** Restores the fields the thread had before {@link #with}. */
    public interface Scope extends AutoCloseable {
        @Override
        void close();
    }

    /**
     * Adds {@code keyValues} (key, value, key, value, ...; null or empty values are left out) to
     * the current thread's fields until the scope closes.
     */
    public static Scope with(String... keyValues) {
        if (keyValues.length % 2 != 0) {
            throw new IllegalArgumentException("keys and values come in pairs");
        }
        Map<String, String> before = MDC.getCopyOfContextMap();
        for (int i = 0; i < keyValues.length; i += 2) {
            String v = keyValues[i + 1];
            if (v != null && !v.isEmpty()) {
                MDC.put(keyValues[i], v);
            }
        }
        return () -> restore(before);
    }

    /** {@code task}, run with the fields the calling thread has now (for a thread it starts). */
    public static Runnable inherit(Runnable task) {
        Map<String, String> fields = MDC.getCopyOfContextMap();
        if (fields == null || fields.isEmpty()) {
            return task;
        }
        Map<String, String> copy = new HashMap<>(fields);
        return () -> {
            Map<String, String> before = MDC.getCopyOfContextMap();
            MDC.setContextMap(copy);
            try {
                task.run();
            } finally {
                restore(before);
            }
        };
    }

    /**
     * {@code factory}'s threads, each run with the fields of the thread that made it (pools are
     * made, and their threads started, by the operation's own thread).
     */
    public static ThreadFactory inheriting(ThreadFactory factory) {
        return task -> factory.newThread(inherit(task));
    }

    private static void restore(Map<String, String> before) {
        if (before == null) {
            MDC.clear();
        } else {
            MDC.setContextMap(before);
        }
    }
}
