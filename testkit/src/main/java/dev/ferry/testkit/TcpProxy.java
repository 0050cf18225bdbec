package dev.ferry.testkit;

import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A TCP forwarder between one client and a server, for cutting a real connection: a host's
 * ZooKeeper client connects through it, and the test decides what gets through.
 */
public final class TcpProxy implements Closeable {
    /** What happens to new connections. */
    public enum Accept {
        FORWARD,
        /** Accepted and closed at once: the client sees its connection refused, over and over. */
        REFUSE
    }

    private final ServerSocket server;
    private final InetSocketAddress target;
    private final List<Link> links = new CopyOnWriteArrayList<>();
    private volatile Accept accept = Accept.FORWARD;
    private volatile boolean closed;

    /** One proxied connection; each direction can be switched to silently dropping bytes. */
    private static final class Link {
        final Socket client;
        final Socket server;
        volatile boolean dropUp;
        volatile boolean dropDown;

        Link(Socket client, Socket server) {
            this.client = client;
            this.server = server;
        }

        void close() {
            try {
                client.close();
            } catch (IOException ignored) {
                // closing
            }
            try {
                server.close();
            } catch (IOException ignored) {
                // closing
            }
        }
    }

    public TcpProxy(InetSocketAddress target) throws IOException {
        this.target = target;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread.ofPlatform()
                .daemon()
                .name("proxy-accept-" + server.getLocalPort())
                .start(this::acceptLoop);
    }

    public String connectString() {
        return "127.0.0.1:" + server.getLocalPort();
    }

    private void acceptLoop() {
        while (!closed) {
            Socket c;
            try {
                c = server.accept();
            } catch (IOException e) {
                return;
            }
            if (accept == Accept.REFUSE) {
                try {
                    c.close();
                } catch (IOException ignored) {
                    // refused
                }
                continue;
            }
            try {
                Socket s = new Socket(target.getAddress(), target.getPort());
                c.setTcpNoDelay(true);
                s.setTcpNoDelay(true);
                Link link = new Link(c, s);
                links.add(link);
                Thread.ofPlatform().daemon().start(() -> pump(link, c, s, true));
                Thread.ofPlatform().daemon().start(() -> pump(link, s, c, false));
            } catch (IOException e) {
                try {
                    c.close();
                } catch (IOException ignored) {
                    // gone
                }
            }
        }
    }

    private void pump(Link link, Socket from, Socket to, boolean up) {
        byte[] buf = new byte[16384];
        try (InputStream in = from.getInputStream();
                OutputStream out = to.getOutputStream()) {
            int n;
            while ((n = in.read(buf)) >= 0) {
                if (up ? link.dropUp : link.dropDown) {
                    continue; // swallowed: the other side never hears of it, and no error says so
                }
                out.write(buf, 0, n);
                out.flush();
            }
        } catch (IOException e) {
            // the link ends
        } finally {
            link.close();
            links.remove(link);
        }
    }

    /**
     * A partition: bytes on open connections vanish silently in both directions, new connections
     * are refused. The client notices only by its own timeouts.
     */
    public void cut() {
        accept = Accept.REFUSE;
        for (Link l : links) {
            l.dropUp = true;
            l.dropDown = true;
        }
    }

    /** Open connections go silent both ways; a new connection works (a broken link, then a good one). */
    public void blackholeOpenConnections() {
        for (Link l : links) {
            l.dropUp = true;
            l.dropDown = true;
        }
    }

    /**
     * Open connections still deliver what the client sends, but nothing comes back; a new connection
     * works. A request then reaches the server and its answer is lost.
     */
    public void dropRepliesOnOpenConnections() {
        for (Link l : links) {
            l.dropDown = true;
        }
    }

    /**
     * In {@code delay}, the connections open now break (reset): the client learns of it at once
     * and reconnects, on a new connection that works.
     */
    public void breakOpenConnectionsAfter(java.time.Duration delay) {
        List<Link> now = List.copyOf(links);
        Thread.ofPlatform().daemon().start(() -> {
            try {
                Thread.sleep(delay.toMillis());
            } catch (InterruptedException e) {
                return;
            }
            now.forEach(Link::close);
        });
    }

    /** The partition heals: silent connections are closed (the client reconnects), new ones are forwarded. */
    public void heal() {
        accept = Accept.FORWARD;
        for (Link l : links) {
            if (l.dropUp || l.dropDown) {
                l.close();
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        try {
            server.close();
        } catch (IOException ignored) {
            // closing
        }
        links.forEach(Link::close);
    }
}
