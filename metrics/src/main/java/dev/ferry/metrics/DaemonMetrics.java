package dev.ferry.metrics;

import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.instrumentation.jvm.JvmMetrics;
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

    DaemonMetrics() {}

    /** Writes this daemon's metrics, the JVM's included, in the text exposition format. */
    public void writeTo(OutputStream out) throws IOException {
        List<MetricSnapshot> all = new ArrayList<>();
        registry.scrape().forEach(all::add);
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
