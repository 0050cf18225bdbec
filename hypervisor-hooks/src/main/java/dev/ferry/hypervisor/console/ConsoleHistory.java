package dev.ferry.hypervisor.console;

import java.io.ByteArrayOutputStream;
import java.io.Closeable;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * A guest's serial console output on this host, bounded, addressed by absolute byte offsets.
 *
 * <p>Offsets count every byte the guest printed since its console began (its <em>generation</em>,
 * a random id made when the VM first boots). A migration carries the tail of the history and the
 * destination {@link #continueFrom continues} it under the same generation and offsets, so a
 * client that follows the console from host to host asks the new host "from offset N of
 * generation G" and gets exactly the bytes it has not seen: no duplicates, no gap. A restart
 * after a failover begins a new generation (the old host's history died with it).
 *
 * <p>On disk: {@code console.log} (the current segment, what older tools read), {@code
 * console.log.1} (the previous one) and {@code console.state} (generation and the offsets where
 * each segment begins). The current segment rotates at {@code segmentBytes}, dropping the older
 * one, so a VM's history never takes more than twice that. This class is the only writer.
 */
public final class ConsoleHistory implements Closeable {
    /** The current segment's file name (tools and tests read its tail for heartbeat lines). */
    public static final String FILE = "console.log";

    /** Per segment: a VM keeps at most two, 2 MiB. */
    public static final long DEFAULT_SEGMENT_BYTES = 1 << 20;

    /** What a migration carries to the destination, at most: the whole history. */
    public static final int MAX_TAIL_BYTES = (int) (2 * DEFAULT_SEGMENT_BYTES);

    private static final String OLDER = FILE + ".1";
    private static final String STATE = "console.state";

    /** Bytes from {@code offset} on, in generation {@code generation}. */
    public record Chunk(String generation, long offset, byte[] data) {
        public Chunk {
            Objects.requireNonNull(generation, "generation");
            Objects.requireNonNull(data, "data");
        }

        public long end() {
            return offset + data.length;
        }
    }

    private final Path dir;
    private final long segmentBytes;
    private final List<Runnable> listeners = new CopyOnWriteArrayList<>();
    private String generation;
    /** Offset of the first byte of console.log.1, or -1 when there is none. */
    private long olderBase;
    /** Offset of the first byte of console.log. */
    private long base;

    private long currentSize;
    private FileChannel current;
    private volatile boolean closed;

    private ConsoleHistory(Path dir, long segmentBytes) {
        this.dir = dir;
        this.segmentBytes = segmentBytes;
    }

    /** Opens the history in {@code dir}, or starts a new generation there when it has none. */
    public static ConsoleHistory open(Path dir) throws IOException {
        return open(dir, DEFAULT_SEGMENT_BYTES);
    }

    public static ConsoleHistory open(Path dir, long segmentBytes) throws IOException {
        if (segmentBytes < 1) {
            throw new IllegalArgumentException("segment size must be positive: " + segmentBytes);
        }
        ConsoleHistory h = new ConsoleHistory(dir, segmentBytes);
        h.load();
        return h;
    }

    private void load() throws IOException {
        Files.createDirectories(dir);
        Path state = dir.resolve(STATE);
        generation = null;
        olderBase = -1;
        base = 0;
        if (Files.exists(state)) {
            for (String line : Files.readAllLines(state, StandardCharsets.UTF_8)) {
                int eq = line.indexOf('=');
                if (eq < 0) {
                    continue;
                }
                String k = line.substring(0, eq);
                String v = line.substring(eq + 1).trim();
                switch (k) {
                    case "generation" -> generation = v;
                    case "base" -> base = Long.parseLong(v);
                    case "older" -> olderBase = Long.parseLong(v);
                    default -> {}
                }
            }
        }
        if (generation == null || generation.isEmpty()) {
            // A console.log without state (an older agent's VM): it becomes the start of a new generation.
            generation = newGeneration();
            olderBase = -1;
            base = 0;
            Files.deleteIfExists(dir.resolve(OLDER));
            writeState();
        }
        if (olderBase >= 0 && !Files.exists(dir.resolve(OLDER))) {
            olderBase = -1;
        }
        current = FileChannel.open(
                dir.resolve(FILE), StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
        currentSize = current.size();
    }

    static String newGeneration() {
        byte[] b = new byte[8];
        new SecureRandom().nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    private void writeState() throws IOException {
        Path tmp = dir.resolve(STATE + ".tmp");
        Files.writeString(
                tmp,
                "generation=" + generation + "\nbase=" + base + "\nolder=" + olderBase + "\n",
                StandardCharsets.UTF_8);
        Files.move(tmp, dir.resolve(STATE), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    public synchronized String generation() {
        return generation;
    }

    /** The offset of the oldest byte still kept. */
    public synchronized long start() {
        return olderBase >= 0 ? olderBase : base;
    }

    /** The offset just past the newest byte. */
    public synchronized long end() {
        return base + currentSize;
    }

    public boolean closed() {
        return closed;
    }

    /** Appends what the guest printed; ignored once closed (the VM is gone). */
    public void append(byte[] data, int off, int len) throws IOException {
        if (len == 0) {
            return;
        }
        synchronized (this) {
            if (closed) {
                return;
            }
            ByteBuffer b = ByteBuffer.wrap(data, off, len);
            while (b.hasRemaining()) {
                current.write(b);
            }
            currentSize += len;
            if (currentSize >= segmentBytes) {
                rotate();
            }
        }
        wake();
    }

    public void append(byte[] data) throws IOException {
        append(data, 0, data.length);
    }

    private void rotate() throws IOException {
        current.close();
        Files.move(dir.resolve(FILE), dir.resolve(OLDER), StandardCopyOption.REPLACE_EXISTING);
        olderBase = base;
        base += currentSize;
        currentSize = 0;
        current = FileChannel.open(
                dir.resolve(FILE), StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
        writeState();
    }

    /**
     * Up to {@code max} bytes from {@code from}; from the oldest byte kept when {@code from} was
     * trimmed away (the chunk's offset then says how much was lost), empty at the end.
     */
    public synchronized Chunk read(long from, int max) throws IOException {
        long start = start();
        long end = end();
        long at = Math.max(from, start);
        if (at >= end || max <= 0) {
            return new Chunk(generation, Math.min(at, end), new byte[0]);
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream((int) Math.min(max, end - at));
        if (olderBase >= 0 && at < base) {
            int n = (int) Math.min(max, base - at);
            readInto(dir.resolve(OLDER), at - olderBase, n, out);
        }
        long next = at + out.size();
        int left = max - out.size();
        if (left > 0 && next >= base && next < end) {
            readInto(dir.resolve(FILE), next - base, (int) Math.min(left, end - next), out);
        }
        return new Chunk(generation, at, out.toByteArray());
    }

    private static void readInto(Path file, long pos, int n, ByteArrayOutputStream out) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(n);
            while (b.hasRemaining()) {
                int r = ch.read(b, pos + b.position());
                if (r < 0) {
                    break;
                }
            }
            out.write(b.array(), 0, b.position());
        } catch (NoSuchFileException e) {
            // rotated or deleted under a reader that did not hold the lock: nothing to add
        }
    }

    /**
     * Where the last {@code lines} lines begin (a line is counted once its newline has arrived;
     * the partial line after the last newline comes along): the start of what is kept when it
     * holds fewer, or when {@code lines} is negative.
     */
    public synchronized long lineOffset(int lines) throws IOException {
        long start = start();
        long end = end();
        if (lines < 0) {
            return start;
        }
        byte[] all =
                read(start, (int) Math.min(Integer.MAX_VALUE - 8, end - start)).data();
        return start + lineStart(all, lines);
    }

    /** Pure: the index in {@code text} where its last {@code lines} complete lines (and the partial rest) begin. */
    static int lineStart(byte[] text, int lines) {
        int i = text.length;
        // A partial last line does not count as one of the lines asked for.
        int seen = 0;
        if (i > 0 && text[i - 1] != '\n') {
            while (i > 0 && text[i - 1] != '\n') {
                i--;
            }
        }
        while (i > 0) {
            int j = i - 1; // the newline ending a complete line
            while (j > 0 && text[j - 1] != '\n') {
                j--;
            }
            if (seen == lines) {
                return i;
            }
            seen++;
            i = j;
        }
        return seen >= lines ? i : 0;
    }

    /** The last {@code max} bytes (what a migration carries to the destination). */
    public synchronized Chunk tail(int max) throws IOException {
        long end = end();
        return read(Math.max(start(), end - max), max);
    }

    /**
     * The destination of a migration: the history becomes {@code tail} (the source's, under its
     * generation and offsets), followed by anything this host recorded already (normally nothing:
     * the guest was paused). A tail of the generation already here and not newer changes nothing.
     */
    public void continueFrom(Chunk tail) throws IOException {
        synchronized (this) {
            if (closed) {
                return;
            }
            if (tail.generation().equals(generation) && tail.end() <= end()) {
                return;
            }
            Chunk local = read(start(), (int) Math.min(Integer.MAX_VALUE - 8, end() - start()));
            current.close();
            Files.deleteIfExists(dir.resolve(OLDER));
            generation = tail.generation();
            olderBase = -1;
            base = tail.offset();
            currentSize = 0;
            Files.deleteIfExists(dir.resolve(FILE));
            current = FileChannel.open(
                    dir.resolve(FILE), StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
            writeState();
            for (byte[] part : List.of(tail.data(), local.data())) {
                ByteBuffer b = ByteBuffer.wrap(part);
                while (b.hasRemaining()) {
                    current.write(b);
                }
                currentSize += part.length;
            }
            if (currentSize >= segmentBytes) {
                rotate();
            }
        }
        wake();
    }

    /** {@code wake} runs (on the appending thread: it must not block) after each append and on close. */
    public Runnable subscribe(Runnable wake) {
        listeners.add(wake);
        return () -> listeners.remove(wake);
    }

    private void wake() {
        for (Runnable r : listeners) {
            try {
                r.run();
            } catch (RuntimeException e) {
                // a listener's failure is its own: the guest's output goes on
            }
        }
    }

    /** Stops recording (the VM left this host or ended) and wakes every follower; the files stay. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            try {
                current.close();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } finally {
                wake();
            }
        }
    }
}
