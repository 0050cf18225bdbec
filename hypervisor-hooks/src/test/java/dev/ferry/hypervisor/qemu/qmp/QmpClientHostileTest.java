package dev.ferry.hypervisor.qemu.qmp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** A QMP client facing a broken or hostile QEMU: a fake monitor on a unix socket says what QEMU never would. */
class QmpClientHostileTest {
    private Path dir;
    private ServerSocketChannel server;
    private SocketChannel qemu;

    @BeforeEach
    void listen() throws IOException {
        dir = Files.createTempDirectory("qmp-hostile");
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(dir.resolve("qmp.sock")));
    }

    @AfterEach
    void close() throws IOException {
        if (qemu != null) {
            qemu.close();
        }
        server.close();
        Files.deleteIfExists(dir.resolve("qmp.sock"));
        Files.deleteIfExists(dir);
    }

    /** Connects a client while the fake monitor greets it and accepts qmp_capabilities (id 1). */
    private QmpClient connect() throws Exception {
        Thread monitor = Thread.ofPlatform().start(() -> {
            try {
                qemu = server.accept();
                send("{\"QMP\": {\"version\": {}, \"capabilities\": []}}");
                ByteBuffer in = ByteBuffer.allocate(4096);
                while (!new String(in.array(), 0, in.position(), StandardCharsets.UTF_8).contains("\n")) {
                    qemu.read(in);
                }
                send("{\"return\": {}, \"id\": 1}");
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        QmpClient c = QmpClient.connect(dir.resolve("qmp.sock"), "hostile", Duration.ofSeconds(10));
        monitor.join();
        return c;
    }

    private void send(String line) throws IOException {
        ByteBuffer b = ByteBuffer.wrap((line + "\r\n").getBytes(StandardCharsets.UTF_8));
        while (b.hasRemaining()) {
            qemu.write(b);
        }
    }

    /**
     * A timestamp beyond what an Instant holds threw DateTimeException in the reader thread, which
     * died without a word: the client stayed READY, events stopped, and commands waited out their
     * timeouts.
     */
    @Test
    void anUnparsableEventTimestampKeepsTheEventAndTheReaderAlive() throws Exception {
        try (QmpClient c = connect()) {
            CountDownLatch seen = new CountDownLatch(2);
            java.util.List<QmpEvent> events = new java.util.concurrent.CopyOnWriteArrayList<>();
            c.addEventListener(e -> {
                events.add(e);
                seen.countDown();
            });
            Instant before = Instant.now();
            send("{\"timestamp\": {\"seconds\": 1e300, \"microseconds\": -5}, \"event\": \"STOP\"}");
            send("{\"timestamp\": {\"seconds\": 9223372036854775807, \"microseconds\": 999999999999},"
                    + " \"event\": \"RESUME\"}");
            assertTrue(seen.await(5, TimeUnit.SECONDS), "both events delivered");
            assertEquals(QmpClient.State.READY, c.state());
            assertTrue(!events.get(0).timestamp().isBefore(before), "an unreadable timestamp is the arrival time");
            assertEquals("RESUME", events.get(1).name());
        }
    }

    /** Events were queued for listeners without bound: a QEMU flooding them grew the heap until it ran out. */
    @Test
    void aFloodOfEventsThatListenersDoNotTakeEndsTheConnectionNotTheHeap() throws Exception {
        try (QmpClient c = connect()) {
            CountDownLatch release = new CountDownLatch(1);
            c.addEventListener(e -> {
                try {
                    release.await();
                } catch (InterruptedException ex) {
                    Thread.currentThread().interrupt();
                }
            });
            CountDownLatch died = new CountDownLatch(1);
            c.onDeath(reason -> died.countDown());
            StringBuilder burst = new StringBuilder();
            for (int i = 0; i < QmpClient.MAX_QUEUED_EVENTS + 10; i++) {
                burst.append(
                        "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 0}, \"event\": \"BALLOON_CHANGE\"}\r\n");
            }
            try {
                ByteBuffer b = ByteBuffer.wrap(burst.toString().getBytes(StandardCharsets.UTF_8));
                while (b.hasRemaining()) {
                    qemu.write(b);
                }
            } catch (IOException e) {
                // the client closed the socket mid-burst: what this test wants
            }
            assertTrue(c.awaitEnd(Duration.ofSeconds(10)), "the client ends the connection instead of queueing on");
            assertEquals(QmpClient.State.DEAD, c.state());
            assertTrue(c.deathReason().contains("events queued"), c.deathReason());
            release.countDown();
            assertTrue(died.await(5, TimeUnit.SECONDS), "death listeners still hear of it");
        }
    }
}
