package dev.ferry.metrics;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.Closeable;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A daemon's metrics endpoint: plain HTTP on the address it was given, answering {@code GET
 * /metrics} (the Prometheus text format) and {@code GET /healthz} ("ok" while the process serves)
 * and nothing else: any other path is 404, any other method 405. It carries no credentials and
 * shows VM and host names, so it belongs on a management address (docs/OPERATIONS.md).
 *
 * <p>One thread answers, one request at a time: a scraper that hangs holds up only other scrapes,
 * never the daemon.
 */
public final class MetricsServer implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(MetricsServer.class);

    private final HttpServer server;
    private final ExecutorService thread;

    private MetricsServer(HttpServer server, ExecutorService thread) {
        this.server = server;
        this.thread = thread;
    }

    static MetricsServer start(InetSocketAddress listen, DaemonMetrics metrics) throws IOException {
        HttpServer server = HttpServer.create(listen, 16);
        ExecutorService thread = Executors.newSingleThreadExecutor(
                Thread.ofPlatform().daemon().name("ferry-metrics-http").factory());
        server.setExecutor(thread);
        // One context for every path, so that /metricsX or /metrics/ is a 404 rather than a prefix match.
        server.createContext("/", exchange -> {
            try (exchange) {
                answer(exchange, metrics);
            } catch (IOException | RuntimeException e) {
                log.debug("metrics request from {} failed: {}", exchange.getRemoteAddress(), e.toString());
            }
        });
        server.start();
        return new MetricsServer(server, thread);
    }

    private static void answer(HttpExchange exchange, DaemonMetrics metrics) throws IOException {
        String path = exchange.getRequestURI().getPath();
        String method = exchange.getRequestMethod();
        boolean head = method.equals("HEAD");
        if (!path.equals("/metrics") && !path.equals("/healthz")) {
            send(
                    exchange,
                    404,
                    "text/plain; charset=utf-8",
                    "not found: this endpoint serves /metrics and /healthz\n",
                    head);
            return;
        }
        if (!method.equals("GET") && !head) {
            exchange.getResponseHeaders().set("Allow", "GET, HEAD");
            send(exchange, 405, "text/plain; charset=utf-8", method + " is not allowed here\n", false);
            return;
        }
        if (path.equals("/healthz")) {
            send(exchange, 200, "text/plain; charset=utf-8", "ok\n", head);
            return;
        }
        ByteArrayOutputStream body = new ByteArrayOutputStream(16 * 1024);
        metrics.writeTo(body);
        send(exchange, 200, DaemonMetrics.CONTENT_TYPE, body.toByteArray(), head);
    }

    private static void send(HttpExchange exchange, int status, String type, String body, boolean head)
            throws IOException {
        send(exchange, status, type, body.getBytes(StandardCharsets.UTF_8), head);
    }

    private static void send(HttpExchange exchange, int status, String type, byte[] body, boolean head)
            throws IOException {
        exchange.getResponseHeaders().set("Content-Type", type);
        exchange.getResponseHeaders().set("Cache-Control", "no-store");
        if (head) {
            exchange.sendResponseHeaders(status, -1);
            return;
        }
        exchange.sendResponseHeaders(status, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }

    /** The address the endpoint listens on (the port resolved when 0 was asked for). */
    public InetSocketAddress address() {
        return server.getAddress();
    }

    /** HOST:PORT of {@link #address()}, an IPv6 address in brackets: what a Prometheus target names. */
    public String endpoint() {
        InetSocketAddress a = address();
        String host = a.getAddress() != null ? a.getAddress().getHostAddress() : a.getHostString();
        return (host.contains(":") ? "[" + host + "]" : host) + ":" + a.getPort();
    }

    /** Stops serving at once; a scrape in progress is cut off. */
    @Override
    public void close() {
        server.stop(0);
        thread.shutdownNow();
    }
}
