package dev.ferry.cli;

import dev.ferry.rpc.Endpoint;
import java.net.InetSocketAddress;

/** The {@code --metrics-listen HOST:PORT} of {@code ferry agent} and {@code ferry coordinator}. */
final class MetricsListen {
    private MetricsListen() {}

    /** The address to bind, resolved now: a name that does not resolve is a usage error (exit 2). */
    static InetSocketAddress parse(String text) {
        Endpoint e;
        try {
            e = Endpoint.parse(text);
        } catch (IllegalArgumentException ex) {
            throw new CliException("--metrics-listen: " + ex.getMessage(), 2);
        }
        if (!(e instanceof Endpoint.Tcp tcp)) {
            throw new CliException("--metrics-listen must be HOST:PORT, got '" + text + "'", 2);
        }
        InetSocketAddress a = tcp.socketAddress();
        if (a.isUnresolved()) {
            throw new CliException("--metrics-listen: cannot resolve '" + tcp.host() + "'", 2);
        }
        return a;
    }
}
