package dev.ferry.cluster.store;

import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.NoRouteToHostException;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSocket;
import org.apache.zookeeper.common.ClientX509Util;
import org.apache.zookeeper.common.SSLContextAndOptions;
import org.apache.zookeeper.common.X509Exception;

/**
 * Why a ZooKeeper client got no session, in words an operator can act on. A ZooKeeper client that
 * is refused sees only "connection loss", whatever the cause: nothing listening, a server that
 * does not trust its certificate, a server that took the TLS handshake and then refused the
 * identity (revoked: {@link RevocationCheckingX509Provider} closes the connection), or an ensemble
 * without a quorum. Called once a connection attempt has failed, it connects to each server of the
 * connect string as the client would (the same {@link ZkTls} settings) and says what each did.
 */
public final class ZkProbe {
    /** What one server did with a connection. */
    public enum Outcome {
        UNKNOWN_HOST,
        REFUSED,
        UNREACHABLE,
        /** The TLS handshake failed, or the server answered it with an alert. */
        TLS_REFUSED,
        /** The handshake completed and the server then closed the connection unasked. */
        CLOSED_AFTER_HANDSHAKE,
        /** Without TLS: the server closed the connection unasked. */
        CLOSED,
        /** The server kept the connection open: it accepts the client, yet gave no session. */
        OPEN
    }

    /** One server's answer: the outcome and, for a TLS failure, the TLS layer's own words. */
    public record Finding(String server, Outcome outcome, String detail) {
        /** One line for an operator. */
        public String describe(ZkSecurity security) {
            String who = security instanceof ZkSecurity.X509 x
                    ? "this certificate (" + x.credentials().identity() + ")"
                    : "a client without a certificate";
            return server + ": "
                    + switch (outcome) {
                        case UNKNOWN_HOST -> "unknown host";
                        case REFUSED -> "connection refused (no ZooKeeper listens there)";
                        case UNREACHABLE -> "no answer (" + detail + ")";
                        case TLS_REFUSED ->
                            "the TLS handshake failed (" + detail + "): the server and " + who
                                    + " do not trust each other (another cluster's CA, an expired certificate, or a plaintext port)";
                        case CLOSED_AFTER_HANDSHAKE ->
                            "the server took the TLS handshake, then closed the connection: it refuses " + who
                                    + " (revoked, or not an identity of this cluster; its log says which)";
                        case CLOSED ->
                            "the server closed the connection at once (a TLS port? this client has no certificate)";
                        case OPEN ->
                            security instanceof ZkSecurity.X509
                                    ? "accepts " + who
                                            + " but gave no session (no quorum? see `ferry cluster status` or the server's log)"
                                    : "accepts connections but gave no session (no quorum, or a TLS port: this client has no certificate)";
                    };
        }
    }

    private ZkProbe() {}

    /** One line: what each server of {@code connect} did, separated by "; ". */
    public static String explain(String connect, ZkSecurity security, Duration wait) {
        List<String> parts = new ArrayList<>();
        for (Finding f : probe(connect, security, wait)) {
            parts.add(f.describe(security));
        }
        return String.join("; ", parts);
    }

    /** Each server of {@code connect} ({@code host:port,...[/chroot]}), probed in turn. */
    public static List<Finding> probe(String connect, ZkSecurity security, Duration wait) {
        List<Finding> out = new ArrayList<>();
        for (InetSocketAddress server : servers(connect)) {
            out.add(probeOne(server, security, wait));
        }
        return out;
    }

    /** The servers of a connect string, unresolved; the chroot suffix is ignored. */
    static List<InetSocketAddress> servers(String connect) {
        String hosts = connect;
        int slash = hosts.indexOf('/');
        if (slash >= 0) {
            hosts = hosts.substring(0, slash);
        }
        List<InetSocketAddress> out = new ArrayList<>();
        for (String s : hosts.split(",")) {
            String h = s.strip();
            if (h.isEmpty()) {
                continue;
            }
            int colon = h.lastIndexOf(':');
            int port = 2181;
            if (colon > 0 && h.indexOf(']') < colon) {
                try {
                    port = Integer.parseInt(h.substring(colon + 1));
                    h = h.substring(0, colon);
                } catch (NumberFormatException e) {
                    // Not a port: the whole thing is a host name, ZooKeeper's default port.
                }
            }
            if (h.startsWith("[") && h.endsWith("]")) {
                h = h.substring(1, h.length() - 1);
            }
            out.add(InetSocketAddress.createUnresolved(h, port));
        }
        return out;
    }

    private static Finding probeOne(InetSocketAddress unresolved, ZkSecurity security, Duration wait) {
        String name = unresolved.getHostString() + ":" + unresolved.getPort();
        InetSocketAddress server = new InetSocketAddress(unresolved.getHostString(), unresolved.getPort());
        if (server.isUnresolved()) {
            return new Finding(name, Outcome.UNKNOWN_HOST, "");
        }
        int millis = (int) Math.max(1, wait.toMillis());
        try (Socket tcp = new Socket()) {
            try {
                tcp.connect(server, millis);
            } catch (ConnectException e) {
                return new Finding(name, Outcome.REFUSED, e.getMessage());
            } catch (SocketTimeoutException | NoRouteToHostException e) {
                return new Finding(name, Outcome.UNREACHABLE, e.getMessage());
            } catch (UnknownHostException e) {
                return new Finding(name, Outcome.UNKNOWN_HOST, e.getMessage());
            }
            tcp.setSoTimeout(millis);
            if (!(security instanceof ZkSecurity.X509 x)) {
                return afterConnect(name, tcp.getInputStream(), Outcome.CLOSED);
            }
            SSLContextAndOptions tls;
            try (ClientX509Util util = new ClientX509Util()) {
                tls = util.createSSLContextAndOptions(ZkTls.clientConfig(x.credentials()));
            }
            // Not tls.createSSLSocket(tcp, ...): that one is ZooKeeper's server side.
            SSLSocket ssl = (SSLSocket) tls.getSSLContext()
                    .getSocketFactory()
                    .createSocket(tcp, unresolved.getHostString(), unresolved.getPort(), true);
            ssl.setUseClientMode(true);
            ssl.setEnabledProtocols(new String[] {ZkTls.PROTOCOL});
            try {
                ssl.startHandshake();
            } catch (SocketTimeoutException e) {
                return new Finding(name, Outcome.UNREACHABLE, "no TLS answer within " + millis + " ms");
            } catch (SSLException e) {
                return new Finding(name, Outcome.TLS_REFUSED, e.getMessage());
            }
            // TLS 1.3: the client finishes first; a server that rejects the client's certificate
            // says so in an alert read after the handshake, and one that refuses the identity
            // afterwards (revoked) closes the connection.
            return afterConnect(name, ssl.getInputStream(), Outcome.CLOSED_AFTER_HANDSHAKE);
        } catch (X509Exception.SSLContextException e) {
            return new Finding(name, Outcome.TLS_REFUSED, "cannot load this client's certificate: " + e.getMessage());
        } catch (IOException e) {
            return new Finding(name, Outcome.UNREACHABLE, e.toString());
        }
    }

    /**
     * Waits (the socket's timeout) for the server to speak first, which a ZooKeeper server never
     * does: an end of stream is the server closing ({@code closed}), silence is an open connection.
     */
    private static Finding afterConnect(String name, InputStream in, Outcome closed) {
        try {
            int b = in.read();
            return b < 0 ? new Finding(name, closed, "end of stream") : new Finding(name, Outcome.OPEN, "");
        } catch (SocketTimeoutException e) {
            return new Finding(name, Outcome.OPEN, "");
        } catch (SSLException e) {
            return new Finding(name, Outcome.TLS_REFUSED, e.getMessage());
        } catch (IOException e) {
            // A reset right after connecting is a close, as far as the client can tell.
            return new Finding(name, closed, e.toString());
        }
    }
}
