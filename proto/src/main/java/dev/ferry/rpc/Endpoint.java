package dev.ferry.rpc;

import java.net.InetSocketAddress;

/**
 * Where a gRPC server listens or a channel connects: {@code host:port}, {@code [v6]:port}, or
 * {@code inproc:NAME} for gRPC's in-process transport (real gRPC, no sockets; used by tests).
 */
public sealed interface Endpoint {

    static Endpoint parse(String text) {
        if (text == null || text.isBlank()) {
            throw new IllegalArgumentException("empty endpoint");
        }
        String s = text.trim();
        if (s.startsWith("inproc:")) {
            String name = s.substring("inproc:".length());
            if (name.isEmpty()) {
                throw new IllegalArgumentException("in-process endpoint needs a name: " + text);
            }
            return new InProcess(name);
        }
        int colon = s.lastIndexOf(':');
        if (colon <= 0 || colon == s.length() - 1) {
            throw new IllegalArgumentException("endpoint must be HOST:PORT, got '" + text + "'");
        }
        String host = s.substring(0, colon);
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        int port;
        try {
            port = Integer.parseInt(s.substring(colon + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("bad port in endpoint '" + text + "'");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port out of range in endpoint '" + text + "'");
        }
        return new Tcp(host, port);
    }

    record Tcp(String host, int port) implements Endpoint {
        public InetSocketAddress socketAddress() {
            return new InetSocketAddress(host, port);
        }

        @Override
        public String toString() {
            return host.indexOf(':') >= 0 ? "[" + host + "]:" + port : host + ":" + port;
        }
    }

    record InProcess(String name) implements Endpoint {
        @Override
        public String toString() {
            return "inproc:" + name;
        }
    }
}
