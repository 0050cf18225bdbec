package dev.ferry.agent;

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
 * A TCP forwarder that can turn into a blackhole: bytes vanish without an error, and neither a
 * close nor a reset gets through, as when a link or a host drops packets silently. Modelled on the
 * cluster tests' proxy (cluster-coordinator), which passes closes on; here a blackholed side that
 * gives up (a source failing its migration closes its lanes) must not tell the other side either.
 */
final class TcpProxy implements Closeable {
    private final ServerSocket server;
    private final InetSocketAddress target;
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();
    private volatile boolean blackholed;
    private volatile boolean closed;

    TcpProxy(InetSocketAddress target) throws IOException {
        this.target = target;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        Thread.ofPlatform()
                .daemon()
                .name("proxy-accept-" + server.getLocalPort())
                .start(this::acceptLoop);
    }

    /** Where clients connect. */
    String endpoint() {
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
            sockets.add(c);
            if (blackholed) {
                // Held open and never answered: a new connection into the blackhole gets nowhere.
                Thread.ofPlatform().daemon().start(() -> drain(c));
                continue;
            }
            try {
                Socket s = new Socket(target.getAddress(), target.getPort());
                sockets.add(s);
                c.setTcpNoDelay(true);
                s.setTcpNoDelay(true);
                Thread.ofPlatform().daemon().start(() -> pump(c, s));
                Thread.ofPlatform().daemon().start(() -> pump(s, c));
            } catch (IOException e) {
                closeQuietly(c);
            }
        }
    }

    private void pump(Socket from, Socket to) {
        byte[] buf = new byte[65536];
        try {
            InputStream in = from.getInputStream();
            OutputStream out = to.getOutputStream();
            int n;
            while ((n = in.read(buf)) >= 0) {
                if (blackholed) {
                    continue; // swallowed: the other side never hears of it, and no error says so
                }
                out.write(buf, 0, n);
                out.flush();
            }
        } catch (IOException e) {
            // this direction ends
        }
        if (!blackholed) {
            closeQuietly(from);
            closeQuietly(to);
        }
        // Blackholed: the other side's socket stays open, so it learns of nothing.
    }

    private static void drain(Socket s) {
        byte[] buf = new byte[65536];
        try {
            InputStream in = s.getInputStream();
            while (in.read(buf) >= 0) {
                // swallowed
            }
        } catch (IOException e) {
            // closed
        }
    }

    /** From now on nothing gets through, either way, on open or new connections; nothing is closed. */
    void blackhole() {
        blackholed = true;
    }

    @Override
    public void close() {
        closed = true;
        closeQuietly(server);
        sockets.forEach(TcpProxy::closeQuietly);
    }

    private static void closeQuietly(Closeable c) {
        try {
            c.close();
        } catch (IOException ignored) {
            // closing
        }
    }
}
