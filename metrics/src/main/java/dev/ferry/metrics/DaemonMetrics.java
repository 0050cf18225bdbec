package dev.ferry.metrics;

import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.instrumentation.jvm.JvmMetrics;
import io.prometheus.metrics.model.registry.Collector;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import io.prometheus.metrics.model.snapshots.MetricSnapshots;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Predicate;

/**
 * One daemon's metrics. Each daemon has a registry of its own, so two daemons in one JVM (as in
 * tests) never mix their counts; the JVM's and the process's metrics (heap, GC, threads, CPU, open
 * files) live in one registry per process, registered once, and every daemon's scrape carries
 * them.
 */
public abstract sealed class DaemonMetrics permits AgentMetrics, CoordinatorMetrics {
    /**
     * The JVM's and the process's metrics. Once per process: the client library keeps every
     * registry it instruments for good, so one per daemon would keep each closed daemon reachable.
     */
    private static final PrometheusRegistry JVM = jvm();

    private static PrometheusRegistry jvm() {
        PrometheusRegistry r = new PrometheusRegistry();
        JvmMetrics.builder().register(r);
        return r;
    }

    private static final PrometheusTextFormatWriter TEXT = PrometheusTextFormatWriter.create();

    /** The content type of {@link #writeTo}: the Prometheus text exposition format 0.0.4. */
    public static final String CONTENT_TYPE = PrometheusTextFormatWriter.CONTENT_TYPE;

    final PrometheusRegistry registry = new PrometheusRegistry();

    /**
     * Held while series that come and go together are added or removed, and while a scrape reads
     * them, so a scrape sees all of them or none (a dashboard joining a migration's progress with
     * its total must not see one without the other). Only plain gauges are read under it: no
     * callback into the daemon runs while it is held.
     */
    final Object seriesTogether = new Object();

    private final Set<String> togetherNames = ConcurrentHashMap.newKeySet();

    private final Predicate<String> together = name -> togetherNames.contains(name);

    DaemonMetrics() {}

    /** Marks {@code name} as one of the series that come and go together under {@link #seriesTogether}. */
    final <M extends Collector> M together(M metric) {
        togetherNames.add(metric.getPrometheusName());
        return metric;
    }

    /** Writes this daemon's metrics, the JVM's included, in the text exposition format. */
    public void writeTo(OutputStream out) throws IOException {
        List<MetricSnapshot> all = new ArrayList<>();
        synchronized (seriesTogether) {
            registry.scrape(together).forEach(all::add);
        }
        registry.scrape(together.negate()).forEach(all::add);
        JVM.scrape().forEach(all::add);
        TEXT.write(out, new MetricSnapshots(all));
    }

    /** What a scrape would return now (tests, diagnostics). */
    public String scrape() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try {
            writeTo(out);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /** Serves these metrics on {@code listen} until the returned server is closed. */
    public MetricsServer serve(InetSocketAddress listen) throws IOException {
        return MetricsServer.start(listen, this);
    }
}
