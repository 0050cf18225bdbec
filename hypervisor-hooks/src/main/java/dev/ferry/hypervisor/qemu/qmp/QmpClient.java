package dev.ferry.hypervisor.qemu.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.Closeable;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.function.Predicate;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A client of one QEMU's QMP monitor over its unix socket.
 *
 * <p>{@link #connect} reads the greeting and negotiates capabilities. Commands may be issued from
 * any number of threads: each carries an {@code id} and its reply is matched by it. One reader
 * thread per client takes replies and events off the socket; events go to listeners on a second
 * thread, in order, so a listener may itself issue commands. When the socket reaches EOF (QEMU
 * exited or was killed) every command still waiting fails at once with
 * {@link QmpException.Kind#DISCONNECTED}, and the death listeners hear why, once.
 *
 * <p>Lifecycle: {@code READY} after {@link #connect}, then {@code DEAD} (QEMU went away) or
 * {@code CLOSED} ({@link #close()}); both are final.
 */
public final class QmpClient implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(QmpClient.class);
    private static final int RECENT_EVENTS = 64;
    /**
     * Events handed to listeners and not yet taken: a QEMU that floods events faster than listeners
     * take them ends the connection instead of growing the queue without bound. QEMU sends a handful
     * per migration or state change, so this is never reached by a working QEMU.
     */
    static final int MAX_QUEUED_EVENTS = 4096;

    /** Lifecycle of the connection. */
    public enum State {
        CONNECTING,
        READY,
        DEAD,
        CLOSED
    }

    private final String name;
    private final Path socket;
    private final SocketChannel channel;
    private final Object writeLock = new Object();
    private final AtomicLong ids = new AtomicLong();
    private final CompletableFuture<QmpMessage.Greeting> greeting = new CompletableFuture<>();
    private final List<Consumer<QmpEvent>> listeners = new CopyOnWriteArrayList<>();
    private final List<Consumer<String>> deathListeners = new CopyOnWriteArrayList<>();
    private final ExecutorService eventThread;
    private final Thread reader;
    private final java.util.concurrent.CountDownLatch ended = new java.util.concurrent.CountDownLatch(1);
    /** Listener deliveries posted to the event thread and not yet run. */
    private final java.util.concurrent.atomic.AtomicInteger queuedEvents =
            new java.util.concurrent.atomic.AtomicInteger();

    private final Object lock = new Object();
    // Guarded by lock.
    private State state = State.CONNECTING;
    private String deathReason;
    private final Map<Long, Pending> pending = new HashMap<>();
    private final List<EventWaiter> waiters = new ArrayList<>();
    private final ArrayDeque<QmpEvent> recent = new ArrayDeque<>();

    private record Pending(String command, CompletableFuture<QmpMessage> reply) {}

    /** Why a command got no reply; never leaves this class (turned into a {@link QmpException}). */
    private static final class Gone extends RuntimeException {
        final boolean closed;

        Gone(String reason, boolean closed) {
            super(reason, null, false, false);
            this.closed = closed;
        }
    }

    private QmpClient(String name, Path socket, SocketChannel channel) {
        this.name = name;
        this.socket = socket;
        this.channel = channel;
        this.eventThread = Executors.newSingleThreadExecutor(
                Thread.ofPlatform().daemon().name("qmp-events-" + name).factory());
        this.reader = Thread.ofPlatform().daemon().name("qmp-reader-" + name).unstarted(this::readLoop);
    }

    /**
     * Connects to the QMP socket at {@code socket}, reads the greeting and leaves capability
     * negotiation mode. {@code name} names the threads and log lines (the VM's name).
     */
    public static QmpClient connect(Path socket, String name, Duration timeout) throws QmpException {
        long deadline = System.nanoTime() + timeout.toNanos();
        SocketChannel channel;
        try {
            channel = SocketChannel.open(StandardProtocolFamily.UNIX);
        } catch (IOException e) {
            throw QmpException.io("connect", "cannot open a unix socket: " + e.getMessage(), e);
        }
        try {
            channel.connect(UnixDomainSocketAddress.of(socket));
        } catch (IOException e) {
            closeQuietly(channel);
            throw QmpException.io("connect", "cannot connect to " + socket + ": " + e.getMessage(), e);
        }
        QmpClient client = new QmpClient(name, socket, channel);
        client.reader.start();
        try {
            client.awaitGreeting(remaining(deadline));
            client.execute("qmp_capabilities", remaining(deadline));
            synchronized (client.lock) {
                if (client.state == State.CONNECTING) {
                    client.state = State.READY;
                }
            }
            return client;
        } catch (QmpException e) {
            client.close();
            throw e;
        }
    }

    private void awaitGreeting(Duration timeout) throws QmpException {
        try {
            QmpMessage.Greeting g = greeting.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
            log.debug("QMP {}: greeting {}", name, g);
        } catch (TimeoutException e) {
            throw QmpException.protocol(
                    "connect",
                    "no QMP greeting on " + socket + " within " + timeout.toMillis()
                            + " ms (is another client connected? QEMU serves one at a time)",
                    null);
        } catch (ExecutionException e) {
            throw QmpException.disconnected(
                    "connect",
                    "connection ended before the QMP greeting: " + e.getCause().getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw QmpException.io("connect", "interrupted waiting for the QMP greeting", e);
        }
    }

    /** The greeting QEMU sent: its version and the capabilities it offered. */
    public QmpMessage.Greeting greeting() {
        return greeting.getNow(null);
    }

    public State state() {
        synchronized (lock) {
            return state;
        }
    }

    /** Why the connection died, or null while it lives (or after a plain {@link #close()}). */
    public String deathReason() {
        synchronized (lock) {
            return deathReason;
        }
    }

    /** Runs {@code command} without arguments. */
    public JsonNode execute(String command, Duration timeout) throws QmpException {
        return execute(command, (JsonNode) null, timeout);
    }

    /** Runs {@code command} with {@code argumentsJson} (a JSON object as text, or null for none). */
    public JsonNode execute(String command, String argumentsJson, Duration timeout) throws QmpException {
        JsonNode arguments = null;
        if (argumentsJson != null && !argumentsJson.isBlank()) {
            try {
                arguments = QmpMessage.JSON.readTree(argumentsJson);
            } catch (IOException e) {
                throw QmpException.protocol(command, "arguments are not JSON: " + argumentsJson, e);
            }
        }
        return execute(command, arguments, timeout);
    }

    /**
     * Runs {@code command} and returns QEMU's {@code return} value. Throws {@link QmpException}
     * naming the command: with QEMU's error class and description when QEMU refused it, or when no
     * reply came within {@code timeout}, or when the connection ended first.
     */
    public JsonNode execute(String command, JsonNode arguments, Duration timeout) throws QmpException {
        Objects.requireNonNull(command, "command");
        long id = ids.incrementAndGet();
        byte[] request = QmpMessage.request(command, arguments, id);
        CompletableFuture<QmpMessage> reply = new CompletableFuture<>();
        synchronized (lock) {
            if (state == State.DEAD) {
                throw QmpException.disconnected(command, deathReason);
            }
            if (state == State.CLOSED) {
                throw QmpException.closed(command);
            }
            pending.put(id, new Pending(command, reply));
        }
        log.debug("QMP {} -> {}", name, new String(request, java.nio.charset.StandardCharsets.UTF_8).strip());
        try {
            write(request);
        } catch (IOException e) {
            forget(id);
            String reason = deathReason();
            if (reason != null) {
                throw QmpException.disconnected(command, reason);
            }
            throw QmpException.io(command, "cannot send to " + socket + ": " + e.getMessage(), e);
        }
        QmpMessage answer;
        try {
            answer = reply.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            forget(id);
            throw QmpException.timeout(command, timeout.toMillis());
        } catch (InterruptedException e) {
            forget(id);
            Thread.currentThread().interrupt();
            throw QmpException.io(command, "interrupted waiting for the reply", e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof Gone gone) {
                throw gone.closed
                        ? QmpException.closed(command)
                        : QmpException.disconnected(command, gone.getMessage());
            }
            throw QmpException.protocol(command, "unexpected failure: " + e.getCause(), e.getCause());
        }
        return switch (answer) {
            case QmpMessage.Return r -> r.value();
            case QmpMessage.Error err -> throw QmpException.error(command, err.errorClass(), err.description());
            default -> throw QmpException.protocol(command, "not a reply: " + answer, null);
        };
    }

    private void forget(long id) {
        synchronized (lock) {
            pending.remove(id);
        }
    }

    private void write(byte[] request) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(request);
        synchronized (writeLock) {
            while (b.hasRemaining()) {
                channel.write(b);
            }
        }
    }

    /** Adds a listener for every event; it runs on the client's event thread, in arrival order. */
    public void addEventListener(Consumer<QmpEvent> listener) {
        listeners.add(Objects.requireNonNull(listener));
    }

    public void removeEventListener(Consumer<QmpEvent> listener) {
        listeners.remove(listener);
    }

    /**
     * Adds a listener told once, with the reason, when the connection dies under the client (EOF or
     * a read error); never called after {@link #close()}. Added after the death, it runs at once on
     * the caller's thread.
     */
    public void onDeath(Consumer<String> listener) {
        String reason;
        synchronized (lock) {
            reason = state == State.DEAD ? deathReason : null;
            if (reason == null) {
                deathListeners.add(listener);
                return;
            }
        }
        listener.accept(reason);
    }

    /**
     * Starts watching for the next event named {@code name} that {@code predicate} accepts. Call it
     * before the command that causes the event, then {@link EventWaiter#await}: an event that
     * arrives in between is not lost.
     */
    public EventWaiter expect(String name, Predicate<QmpEvent> predicate) {
        EventWaiter w = new EventWaiter(name, predicate == null ? e -> true : predicate);
        synchronized (lock) {
            if (state == State.DEAD) {
                w.future.completeExceptionally(new Gone(deathReason, false));
            } else if (state == State.CLOSED) {
                w.future.completeExceptionally(new Gone("closed", true));
            } else {
                waiters.add(w);
            }
        }
        return w;
    }

    /** Waits for an event that arrives after this call; see {@link #expect} to avoid a race with a command. */
    public QmpEvent awaitEvent(String name, Predicate<QmpEvent> predicate, Duration timeout) throws QmpException {
        try (EventWaiter w = expect(name, predicate)) {
            return w.await(timeout);
        }
    }

    /** The last events received (at most 64), oldest first: for logs and diagnosis. */
    public List<QmpEvent> recentEvents() {
        synchronized (lock) {
            return List.copyOf(recent);
        }
    }

    /** A registered wait for one event. */
    public final class EventWaiter implements AutoCloseable {
        private final String event;
        private final Predicate<QmpEvent> predicate;
        private final CompletableFuture<QmpEvent> future = new CompletableFuture<>();

        private EventWaiter(String event, Predicate<QmpEvent> predicate) {
            this.event = event;
            this.predicate = predicate;
        }

        private boolean offer(QmpEvent e) {
            if (!e.name().equals(event) || !predicate.test(e)) {
                return false;
            }
            return future.complete(e);
        }

        /** The event, or {@link QmpException} on timeout or when the connection ends first. */
        public QmpEvent await(Duration timeout) throws QmpException {
            String what = "await " + event;
            try {
                return future.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
            } catch (TimeoutException e) {
                throw QmpException.timeout(what, timeout.toMillis());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw QmpException.io(what, "interrupted", e);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof Gone gone) {
                    throw gone.closed ? QmpException.closed(what) : QmpException.disconnected(what, gone.getMessage());
                }
                throw QmpException.protocol(what, "unexpected failure: " + e.getCause(), e.getCause());
            } finally {
                close();
            }
        }

        /** Stops waiting. */
        @Override
        public void close() {
            synchronized (lock) {
                waiters.remove(this);
            }
        }
    }

    private void readLoop() {
        QmpFramer framer = new QmpFramer();
        ByteBuffer buffer = ByteBuffer.allocate(64 * 1024);
        String reason;
        try {
            while (true) {
                buffer.clear();
                int n = channel.read(buffer);
                if (n < 0) {
                    reason = "QEMU closed the QMP connection (end of stream on " + socket
                            + "): QEMU exited or was killed";
                    break;
                }
                buffer.flip();
                framer.accept(buffer, this::dispatch);
            }
        } catch (ClosedChannelException e) {
            reason = "QMP socket closed";
        } catch (java.net.SocketException e) {
            // QEMU exiting with unread input in its socket resets the connection instead of closing it.
            reason = "QEMU closed the QMP connection (" + e.getMessage() + " on " + socket
                    + "): QEMU exited or was killed";
        } catch (IOException e) {
            reason = "reading QMP from " + socket + " failed: " + e.getMessage();
        } catch (IllegalArgumentException e) {
            reason = "QEMU sent something that is not QMP: " + e.getMessage();
        } catch (RuntimeException e) {
            // Whatever else a broken or hostile QEMU provokes ends the connection with its reason:
            // a reader thread that died silently left every command waiting out its timeout.
            reason = "QEMU sent something this client cannot take: " + e;
        }
        die(reason);
        ended.countDown();
    }

    /**
     * Waits until the reader has seen the connection end (EOF after QEMU exits) or the client is
     * closed, so that every event QEMU sent before it went away has been taken in; false on timeout.
     */
    public boolean awaitEnd(Duration timeout) {
        try {
            return ended.await(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    private void dispatch(byte[] line) {
        QmpMessage message = QmpMessage.parse(line);
        switch (message) {
            case QmpMessage.Greeting g -> greeting.complete(g);
            case QmpMessage.Return r -> reply(r.id(), r);
            case QmpMessage.Error e -> reply(e.id(), e);
            case QmpMessage.Event ev -> event(ev.event());
        }
    }

    private void reply(Long id, QmpMessage message) {
        Pending p;
        synchronized (lock) {
            p = id == null ? null : pending.remove(id);
        }
        if (p == null) {
            // A reply to a command whose caller already gave up (timeout), or an error QEMU could not tie to a request.
            log.debug("QMP {}: reply without a waiting command: {}", name, message);
            return;
        }
        log.debug("QMP {} <- {}: {}", name, p.command(), message);
        p.reply().complete(message);
    }

    private void event(QmpEvent e) {
        List<EventWaiter> matched = new ArrayList<>();
        synchronized (lock) {
            recent.addLast(e);
            if (recent.size() > RECENT_EVENTS) {
                recent.removeFirst();
            }
            for (EventWaiter w : waiters) {
                if (w.offer(e)) {
                    matched.add(w);
                }
            }
            waiters.removeAll(matched);
        }
        log.debug("QMP {} event {} {}", name, e.name(), e.data());
        for (Consumer<QmpEvent> l : listeners) {
            if (queuedEvents.incrementAndGet() > MAX_QUEUED_EVENTS) {
                throw new IllegalStateException(
                        "more than " + MAX_QUEUED_EVENTS + " QMP events queued for listeners (QEMU floods events)");
            }
            post(() -> {
                queuedEvents.decrementAndGet();
                try {
                    l.accept(e);
                } catch (RuntimeException ex) {
                    log.warn("QMP {}: event listener failed on {}", name, e.name(), ex);
                }
            });
        }
    }

    private void die(String reason) {
        List<Pending> failed;
        List<EventWaiter> abandoned;
        synchronized (lock) {
            if (state == State.CLOSED || state == State.DEAD) {
                return;
            }
            state = State.DEAD;
            deathReason = reason;
            failed = List.copyOf(pending.values());
            pending.clear();
            abandoned = List.copyOf(waiters);
            waiters.clear();
        }
        log.info("QMP {}: {}", name, reason);
        Gone gone = new Gone(reason, false);
        greeting.completeExceptionally(gone);
        failed.forEach(p -> p.reply().completeExceptionally(gone));
        abandoned.forEach(w -> w.future.completeExceptionally(gone));
        for (Consumer<String> l : deathListeners) {
            post(() -> {
                try {
                    l.accept(reason);
                } catch (RuntimeException ex) {
                    log.warn("QMP {}: death listener failed", name, ex);
                }
            });
        }
        closeQuietly(channel);
        eventThread.shutdown();
    }

    /** Closes the connection; commands still waiting fail with {@link QmpException.Kind#CLOSED}. */
    @Override
    public void close() {
        List<Pending> failed;
        List<EventWaiter> abandoned;
        synchronized (lock) {
            if (state == State.CLOSED) {
                return;
            }
            state = State.CLOSED;
            failed = List.copyOf(pending.values());
            pending.clear();
            abandoned = List.copyOf(waiters);
            waiters.clear();
        }
        Gone gone = new Gone("closed", true);
        greeting.completeExceptionally(gone);
        failed.forEach(p -> p.reply().completeExceptionally(gone));
        abandoned.forEach(w -> w.future.completeExceptionally(gone));
        closeQuietly(channel);
        eventThread.shutdown();
        ended.countDown();
        if (Thread.currentThread() != reader) {
            try {
                reader.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private void post(Runnable task) {
        try {
            eventThread.execute(task);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // Closed meanwhile: its owner no longer listens.
        }
    }

    private static void closeQuietly(SocketChannel c) {
        try {
            c.close();
        } catch (IOException e) {
            // Nothing to do: the peer is gone either way.
        }
    }

    private static Duration remaining(long deadline) {
        return Duration.ofNanos(Math.max(0, deadline - System.nanoTime()));
    }

    @Override
    public String toString() {
        return "QmpClient[" + name + " " + socket + " " + state() + "]";
    }
}
