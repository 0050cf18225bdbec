package dev.ferry.hypervisor.console;

import dev.ferry.hypervisor.linux.Linux;
import java.io.Closeable;
import java.io.IOException;
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
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A guest's serial console output on this host, bounded, addressed by absolute byte offsets.
 *
 * <p>The bytes are in {@code console.log}, written by whoever prints: QEMU itself (its console
 * chardev's {@code logfile=}, so the file is a record of what the guest printed even while no
 * agent runs) or the sim guest through {@link #append}. Offsets count every byte the guest printed
 * since its console began (its <em>generation</em>, a random id made when the VM first boots):
 * absolute offset = {@code base} + position in the file, both kept in {@code console.state}.
 *
 * <p>A migration carries the tail of the history and the destination {@link #continueFrom
 * continues} it under the same generation and offsets, so a client that follows the console from
 * host to host asks the new host "from offset N of generation G" and gets exactly the bytes it has
 * not seen. A restart after a failover begins a new generation (the old host's history died with it).
 *
 * <p>Bounded: once the file holds more than twice {@code keepBytes}, everything but the last
 * {@code keepBytes} is punched out of it ({@code fallocate(PUNCH_HOLE)}): the blocks are freed,
 * the file's length and every offset stay as they were, and a writer appending to it (QEMU holds it
 * open with O_APPEND) loses nothing. A reader asking for a trimmed offset gets the oldest byte kept.
 *
 * <p>When the bytes were printed is noted to about a second in {@code console.times} (a {@link
 * ConsoleTimeIndex}: bounded, coarser for older output), kept with the history through trims and
 * migrations, so that {@code ferry vm console --since 10m} can start where the last ten minutes'
 * output does ({@link #sinceOffset}).
 */
public final class ConsoleHistory implements Closeable {
    private static final Logger log = LoggerFactory.getLogger(ConsoleHistory.class);

    /** The console's file (tools and tests read its tail for heartbeat lines). */
    public static final String FILE = "console.log";

    /** What each host keeps of a console, at least; at most twice that is on disk. */
    public static final long DEFAULT_KEEP_BYTES = 1 << 20;

    /** What a migration carries to the destination, at most (read while the guest is paused). */
    public static final int MAX_TAIL_BYTES = 1 << 20;

    private static final String STATE = "console.state";
    private static final String BEFORE = "console.before";
    /** When the bytes were printed ({@link ConsoleTimeIndex}): a line "offset first last" per mark. */
    private static final String TIMES = "console.times";

    private static final long POLL_MS = 50;
    private static final Set<ConsoleHistory> OPEN = ConcurrentHashMap.newKeySet();
    /** One thread for every history on this host: a stat per console per tick, and the trimming. */
    private static final ScheduledExecutorService POLLER = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("ferry-console-poll").factory());

    static {
        POLLER.scheduleWithFixedDelay(
                () -> {
                    for (ConsoleHistory h : OPEN) {
                        h.poll();
                    }
                },
                POLL_MS,
                POLL_MS,
                TimeUnit.MILLISECONDS);
    }

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
    private final Path file;
    private final long keepBytes;
    private final List<Runnable> listeners = new CopyOnWriteArrayList<>();
    private final ConsoleTimeIndex times = new ConsoleTimeIndex();
    /** Wall-clock milliseconds: when output was seen (replaced in tests). */
    private volatile java.util.function.LongSupplier clock = System::currentTimeMillis;
    /** Lines appended to console.times since it was last written whole (it is rewritten past a bound). */
    private int timesAppended;

    private String generation;
    /** Absolute offset of the file's first byte. */
    private long base;
    /** Bytes at the file's start that are gone (punched out, or not this generation's). */
    private long trimmed;
    /**
     * Absolute offset of {@code console.before}'s first byte (the tail a migration brought, kept
     * apart so that console.log stays what this host's QEMU printed), or -1 when there is none.
     */
    private long beforeBase = -1;

    private long beforeLength;

    private long lastSize = -1;
    private FileChannel appender;
    private boolean punchUnsupported;
    private volatile boolean closed;

    private ConsoleHistory(Path dir, long keepBytes) {
        this.dir = dir;
        this.file = dir.resolve(FILE);
        this.keepBytes = keepBytes;
    }

    /** Opens the history in {@code dir}, or starts a new generation there when it has none. */
    public static ConsoleHistory open(Path dir) throws IOException {
        return open(dir, DEFAULT_KEEP_BYTES);
    }

    public static ConsoleHistory open(Path dir, long keepBytes) throws IOException {
        if (keepBytes < 1) {
            throw new IllegalArgumentException("what is kept must be positive: " + keepBytes);
        }
        ConsoleHistory h = new ConsoleHistory(dir, keepBytes);
        h.load();
        OPEN.add(h);
        return h;
    }

    private synchronized void load() throws IOException {
        Files.createDirectories(dir);
        if (!Files.exists(file)) {
            Files.createFile(file);
        }
        Path state = dir.resolve(STATE);
        generation = null;
        base = 0;
        trimmed = 0;
        if (Files.exists(state)) {
            for (String line : Files.readAllLines(state, StandardCharsets.UTF_8)) {
                int eq = line.indexOf('=');
                if (eq < 0) {
                    continue;
                }
                String v = line.substring(eq + 1).trim();
                switch (line.substring(0, eq)) {
                    case "generation" -> generation = v;
                    case "base" -> base = Long.parseLong(v);
                    case "trimmed" -> trimmed = Long.parseLong(v);
                    case "before" -> beforeBase = Long.parseLong(v);
                    default -> {}
                }
            }
        }
        if (generation == null || generation.isEmpty()) {
            // A console.log without state (an older agent's VM): it becomes the start of a new generation.
            generation = newGeneration();
            base = 0;
            trimmed = 0;
            writeState();
            Files.deleteIfExists(dir.resolve(TIMES)); // another generation's, if any
        }
        beforeLength = 0;
        if (beforeBase >= 0) {
            try {
                beforeLength = Files.size(dir.resolve(BEFORE));
            } catch (IOException e) {
                beforeBase = -1;
            }
        }
        lastSize = size();
        loadTimes();
    }

    /**
     * Reads the marks back. A mark is written when it starts, so its last time on disk is its
     * first; it grew for at most {@link ConsoleTimeIndex#RESOLUTION_MS} (or until the next began),
     * which is what it is taken to cover. Whatever QEMU printed while no agent watched was printed
     * by the file's modification time: the last mark is stretched to it, so that {@code --since}
     * never skips it.
     */
    private void loadTimes() throws IOException {
        Path f = dir.resolve(TIMES);
        List<ConsoleTimeIndex.Mark> read = new java.util.ArrayList<>();
        if (Files.exists(f)) {
            for (String line : Files.readAllLines(f, StandardCharsets.US_ASCII)) {
                String[] p = line.trim().split(" ");
                if (p.length != 3) {
                    continue;
                }
                try {
                    ConsoleTimeIndex.Mark m =
                            new ConsoleTimeIndex.Mark(Long.parseLong(p[0]), Long.parseLong(p[1]), Long.parseLong(p[2]));
                    // A later line for the same offset (a rewrite after a thinning) replaces it.
                    if (!read.isEmpty() && read.getLast().offset() >= m.offset()) {
                        if (read.getLast().offset() != m.offset()) {
                            continue; // out of order: a damaged line
                        }
                        read.removeLast();
                    }
                    read.add(m);
                } catch (IllegalArgumentException e) {
                    // a damaged line: that mark's bytes fall to its neighbour, a coarser answer
                }
            }
        }
        List<ConsoleTimeIndex.Mark> fixed = new java.util.ArrayList<>(read.size() + 1);
        for (int i = 0; i < read.size(); i++) {
            ConsoleTimeIndex.Mark m = read.get(i);
            long grewUntil = m.firstMillis() + ConsoleTimeIndex.RESOLUTION_MS;
            if (i + 1 < read.size()) {
                grewUntil = Math.min(
                        grewUntil, Math.max(m.firstMillis(), read.get(i + 1).firstMillis()));
            }
            fixed.add(new ConsoleTimeIndex.Mark(m.offset(), m.firstMillis(), Math.max(m.lastMillis(), grewUntil)));
        }
        long start = start();
        long end = end();
        if (end > start) {
            long printedBy = Files.getLastModifiedTime(file).toMillis();
            if (fixed.isEmpty()) {
                fixed.add(new ConsoleTimeIndex.Mark(start, printedBy, printedBy));
            } else {
                ConsoleTimeIndex.Mark last = fixed.getLast();
                fixed.set(
                        fixed.size() - 1,
                        new ConsoleTimeIndex.Mark(
                                last.offset(), last.firstMillis(), Math.max(last.lastMillis(), printedBy)));
            }
        }
        try {
            times.reset(fixed);
        } catch (IllegalArgumentException e) {
            times.reset(List.of()); // cannot happen after the filtering above; without marks, --since shows everything
        }
        times.trimBefore(start);
        writeTimes();
    }

    /** Writes console.times whole (atomically). */
    private void writeTimes() throws IOException {
        StringBuilder b = new StringBuilder();
        for (ConsoleTimeIndex.Mark m : times.marks()) {
            b.append(m.offset())
                    .append(' ')
                    .append(m.firstMillis())
                    .append(' ')
                    .append(m.lastMillis())
                    .append('\n');
        }
        Path tmp = dir.resolve(TIMES + ".tmp");
        Files.writeString(tmp, b, StandardCharsets.US_ASCII);
        Files.move(tmp, dir.resolve(TIMES), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        timesAppended = 0;
    }

    /** Notes that [from, to) was seen now; a new mark goes to disk at once (one line, at most once a second). */
    private void noteTimes(long from, long to, long now) {
        int before = times.size();
        ConsoleTimeIndex.Mark m = times.printed(from, to, now);
        try {
            if (times.size() <= before || timesAppended > 2 * ConsoleTimeIndex.MAX_MARKS) {
                if (times.size() < before || timesAppended > 2 * ConsoleTimeIndex.MAX_MARKS) {
                    writeTimes(); // thinned, or the file has grown long with appends
                }
                return; // extended: the bound on load covers it
            }
            Files.writeString(
                    dir.resolve(TIMES),
                    m.offset() + " " + m.firstMillis() + " " + m.lastMillis() + "\n",
                    StandardCharsets.US_ASCII,
                    StandardOpenOption.CREATE,
                    StandardOpenOption.APPEND);
            timesAppended++;
        } catch (IOException e) {
            // The history itself is intact; only --since answers more coarsely after a restart.
            log.debug("cannot note console times in {}: {}", dir, e.getMessage());
        }
    }

    private static final SecureRandom RANDOM = new SecureRandom();

    static String newGeneration() {
        byte[] b = new byte[8];
        RANDOM.nextBytes(b);
        return HexFormat.of().formatHex(b);
    }

    private void writeState() throws IOException {
        Path tmp = dir.resolve(STATE + ".tmp");
        Files.writeString(
                tmp,
                "generation=" + generation + "\nbase=" + base + "\ntrimmed=" + trimmed + "\nbefore=" + beforeBase
                        + "\n",
                StandardCharsets.UTF_8);
        Files.move(tmp, dir.resolve(STATE), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    private long size() {
        try {
            return Files.size(file);
        } catch (IOException e) {
            return trimmed; // gone (the VM's directory was removed): nothing more to read
        }
    }

    /** Tests: the clock output is timed by. */
    void clock(java.util.function.LongSupplier c) {
        clock = c;
    }

    public synchronized String generation() {
        return generation;
    }

    /** The offset of the oldest byte still kept. */
    public synchronized long start() {
        return beforeBase >= 0 ? beforeBase : base + trimmed;
    }

    /** The offset just past the newest byte. */
    public synchronized long end() {
        return base + Math.max(trimmed, size());
    }

    public boolean closed() {
        return closed;
    }

    /** Appends what the guest printed (the sim guest; QEMU writes the file itself); ignored once closed. */
    public void append(byte[] data, int off, int len) throws IOException {
        if (len == 0) {
            return;
        }
        synchronized (this) {
            if (closed) {
                return;
            }
            if (appender == null) {
                appender = FileChannel.open(file, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
            }
            ByteBuffer b = ByteBuffer.wrap(data, off, len);
            while (b.hasRemaining()) {
                appender.write(b);
            }
        }
        poll();
    }

    public void append(byte[] data) throws IOException {
        append(data, 0, data.length);
    }

    /** Wakes the followers when the file grew, and trims it when it holds more than twice what is kept. */
    void poll() {
        boolean grew;
        synchronized (this) {
            if (closed) {
                return;
            }
            long size = size();
            grew = size != lastSize;
            if (lastSize >= 0 && size > lastSize) {
                noteTimes(base + lastSize, base + size, clock.getAsLong());
            }
            lastSize = size;
            if (size - trimmed > 2 * keepBytes) {
                trim(size);
            }
        }
        if (grew) {
            wake();
        }
    }

    private void trim(long size) {
        // Page-aligned, so that whole blocks are freed; punching from 0 also frees what an earlier stay
        // of the VM on this host left before a continued history.
        long upTo = (size - keepBytes) & ~4095L;
        if (upTo <= trimmed || punchUnsupported) {
            return;
        }
        try {
            int fd = Linux.open(file.toString(), Linux.O_RDWR | Linux.O_CLOEXEC);
            try {
                Linux.fallocate(fd, Linux.FALLOC_FL_PUNCH_HOLE | Linux.FALLOC_FL_KEEP_SIZE, 0, upTo);
            } finally {
                Linux.close(fd);
            }
            trimmed = upTo;
            beforeBase = -1; // older than what is kept now
            beforeLength = 0;
            writeState();
            times.trimBefore(start());
            writeTimes();
            Files.deleteIfExists(dir.resolve(BEFORE));
        } catch (IOException e) {
            punchUnsupported = true;
            log.warn("the console history in {} cannot be trimmed ({}); it grows unbounded", dir, e.getMessage());
        }
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
        int n = (int) Math.min(max, end - at);
        ByteBuffer b = ByteBuffer.allocate(n);
        long beforeEnd = beforeBase + beforeLength;
        if (beforeBase >= 0 && at < beforeEnd) {
            b.limit((int) Math.min(n, beforeEnd - at));
            readInto(dir.resolve(BEFORE), at - beforeBase, b);
            b.limit(n);
        }
        if (b.hasRemaining()) {
            readInto(file, at + b.position() - base, b);
        }
        byte[] data = b.position() == n ? b.array() : java.util.Arrays.copyOf(b.array(), b.position());
        return new Chunk(generation, at, data);
    }

    private static void readInto(Path f, long pos, ByteBuffer b) throws IOException {
        try (FileChannel ch = FileChannel.open(f, StandardOpenOption.READ)) {
            int start = b.position();
            while (b.hasRemaining()) {
                if (ch.read(b, pos + b.position() - start) < 0) {
                    break;
                }
            }
        } catch (NoSuchFileException e) {
            // the VM's directory was removed: nothing to read
        }
    }

    /**
     * Where the last {@code lines} lines begin (a line is counted once its newline has arrived;
     * the partial line after the last newline comes along): the start of what is kept when it
     * holds fewer, or when {@code lines} is negative.
     */
    public synchronized long lineOffset(int lines) throws IOException {
        long start = start();
        if (lines < 0) {
            return start;
        }
        byte[] all = read(start, (int) Math.min(Integer.MAX_VALUE - 8, end() - start))
                .data();
        return start + lineStart(all, lines);
    }

    /**
     * Where the output printed at or after {@code epochMillis} (this host's clock; the source's for
     * the part a migration brought) begins, moved back to the start of its line: it may include up
     * to about a second of what came just before, never less than was printed since.
     */
    public synchronized long sinceOffset(long epochMillis) throws IOException {
        long start = start();
        long end = end();
        long at = times.offsetSince(epochMillis, start, end);
        if (at <= start || at >= end) {
            return at;
        }
        // Back to the line's start: read what precedes it, a page at a time, up to what is kept.
        long from = at;
        while (from > start) {
            long lookFrom = Math.max(start, from - 4096);
            byte[] before = read(lookFrom, (int) (from - lookFrom)).data();
            for (int i = before.length - 1; i >= 0; i--) {
                if (before[i] == '\n') {
                    return lookFrom + i + 1;
                }
            }
            from = lookFrom;
            if (at - from > MAX_TAIL_BYTES) {
                return at; // a line longer than any tail: start mid-line
            }
        }
        return start;
    }

    /** The time marks of the bytes from {@code offset} on: what a migration carries beside the tail. */
    public synchronized List<ConsoleTimeIndex.Mark> timesFrom(long offset) {
        return times.from(offset);
    }

    /** Pure: the index in {@code text} where its last {@code lines} complete lines (and the partial rest) begin. */
    static int lineStart(byte[] text, int lines) {
        int i = text.length;
        while (i > 0 && text[i - 1] != '\n') {
            i--; // a partial last line comes along and does not count
        }
        int seen = 0;
        while (i > 0 && seen < lines) {
            int j = i - 1; // the newline ending a complete line
            while (j > 0 && text[j - 1] != '\n') {
                j--;
            }
            seen++;
            i = j;
        }
        return seen < lines ? 0 : i;
    }

    /** The last {@code max} bytes (what a migration carries to the destination). */
    public synchronized Chunk tail(int max) throws IOException {
        return read(Math.max(start(), end() - max), max);
    }

    /**
     * The destination of a migration: the history becomes {@code tail} (the source's, under its
     * generation and offsets, in {@code console.before}) followed by what the guest prints here from
     * now on; what console.log held before is no longer part of it. A tail of the generation already
     * here and not newer changes nothing.
     */
    public void continueFrom(Chunk tail) throws IOException {
        continueFrom(tail, List.of());
    }

    /** As {@link #continueFrom(Chunk)}, with when the tail's bytes were printed (on the source). */
    public void continueFrom(Chunk tail, List<ConsoleTimeIndex.Mark> tailTimes) throws IOException {
        synchronized (this) {
            if (closed) {
                return;
            }
            if (tail.generation().equals(generation) && tail.end() <= end()) {
                return;
            }
            // Kept apart from console.log, which stays what this host's guest printed (its bytes so far,
            // an earlier stay's, are no longer part of the history).
            Path tmp = dir.resolve(BEFORE + ".tmp");
            Files.write(tmp, tail.data());
            Files.move(tmp, dir.resolve(BEFORE), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            long pos = size();
            generation = tail.generation();
            beforeBase = tail.offset();
            beforeLength = tail.data().length;
            base = tail.end() - pos;
            trimmed = pos;
            writeState();
            try {
                times.reset(tailTimes);
            } catch (IllegalArgumentException e) {
                log.warn(
                        "the console times that came with the history are unusable ({}); --since shows it all",
                        e.getMessage());
                times.reset(List.of());
            }
            times.trimBefore(start());
            writeTimes();
            lastSize = -1;
        }
        poll();
    }

    /** {@code wake} runs (on the poller or an appending thread: it must not block) when the console grew, and on close. */
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

    /** Stops following the file (the VM left this host or ended) and wakes every follower; the file stays. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            OPEN.remove(this);
            if (appender != null) {
                try {
                    appender.close();
                } catch (IOException e) {
                    // closing
                }
            }
        }
        wake();
    }
}
