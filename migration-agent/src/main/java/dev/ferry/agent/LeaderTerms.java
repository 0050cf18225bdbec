package dev.ferry.agent;

import io.grpc.Status;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The newest coordinator leader term this agent has seen, and the rule that keeps a deposed leader
 * from acting through it: an order (create, start, stop, delete, migrate, cancel) that carries an
 * older term is refused with FAILED_PRECONDITION naming both terms. Terms are the leaders' fencing
 * token: each replica that takes office allocates the next one in ZooKeeper, so a leader that was
 * frozen past its session (a long GC, SIGSTOP) and wakes with orders still in hand carries a term
 * older than its successor's.
 *
 * <p>A newer term is written to the data directory (file {@value #FILE}, fsynced, renamed into
 * place) before the order that brought it is carried out, so an agent restarted after it has seen
 * term n still refuses term n - 1. An order is carried out while it holds this object's read lock
 * and a newer term is taken under the write lock, so once a newer term is noted no order of an
 * older one is still running or can begin.
 *
 * <p>A standalone agent (no cluster) takes orders without a term: an operator's CLI talks to it
 * directly. An agent in a cluster takes orders only from its coordinator leader, with its term.
 */
public final class LeaderTerms {
    private static final Logger log = LoggerFactory.getLogger(LeaderTerms.class);

    /** The file in the data directory that holds the newest term seen. */
    public static final String FILE = "leader-term";

    /** What {@link #judge} says of one order. */
    public enum Verdict {
        /** The term is the newest seen (or the order needs none): carry it out. */
        ACCEPT,
        /** A newer term: note it (persist it), then carry the order out. */
        ACCEPT_NEWER,
        /** Older than the newest seen: a deposed leader's order. */
        REFUSE_OLDER,
        /** No term, on an agent in a cluster: not from a coordinator leader. */
        REFUSE_WITHOUT_TERM
    }

    /** Work carried out under an admitted term. */
    public interface Order<T> {
        T run() throws AgentException;
    }

    private final Path file;
    private final boolean clustered;
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    /** Guarded by {@link #lock}: read under either lock, written under the write lock. */
    private long newest;

    private LeaderTerms(Path file, boolean clustered, long newest) {
        this.file = file;
        this.clustered = clustered;
        this.newest = newest;
    }

    /**
     * The terms of an agent whose data directory is {@code dataDir}: the newest term recorded there
     * (0 if none). An unreadable record fails the agent's start rather than forget a term.
     */
    public static LeaderTerms open(Path dataDir, boolean clustered) throws IOException {
        Path file = dataDir.resolve(FILE);
        long newest = 0;
        if (Files.exists(file)) {
            String text = Files.readString(file, StandardCharsets.US_ASCII).trim();
            try {
                newest = Long.parseLong(text);
            } catch (NumberFormatException e) {
                throw new IOException(file + " does not hold a leader term ('" + text + "'); it is the newest "
                        + "coordinator term this agent obeyed, so it is not ignored: restore it or remove it "
                        + "knowing that a deposed leader's orders would then be taken");
            }
            if (newest < 0) {
                throw new IOException(file + " holds a negative leader term " + newest);
            }
        }
        return new LeaderTerms(file, clustered, newest);
    }

    /**
     * The rule. {@code offered} 0 means the order carries no term; terms start at 1.
     *
     * @param clustered the agent is a member of a cluster
     * @param newest the newest term the agent has seen (0: none)
     */
    public static Verdict judge(boolean clustered, long newest, long offered) {
        if (offered <= 0) {
            return clustered ? Verdict.REFUSE_WITHOUT_TERM : Verdict.ACCEPT;
        }
        if (offered < newest) {
            return Verdict.REFUSE_OLDER;
        }
        return offered > newest ? Verdict.ACCEPT_NEWER : Verdict.ACCEPT;
    }

    /** The newest term seen so far. */
    public long newest() {
        lock.readLock().lock();
        try {
            return newest;
        } finally {
            lock.readLock().unlock();
        }
    }

    /** True while an order waits to be admitted (for tests: a newer term waiting for older orders). */
    boolean ordersWaiting() {
        return lock.hasQueuedThreads();
    }

    /**
     * Carries out {@code order} ({@code what} names it for the refusal) if {@code term} may give it;
     * throws FAILED_PRECONDITION otherwise, and INTERNAL if a newer term cannot be recorded.
     */
    public <T> T order(long term, String what, Order<T> order) throws AgentException {
        Lock held = admit(term, what);
        try {
            return order.run();
        } finally {
            held.unlock();
        }
    }

    /** Returns the read lock, held, once {@code term} is admitted. */
    private Lock admit(long term, String what) throws AgentException {
        Lock read = lock.readLock();
        read.lock();
        long seen = newest;
        Verdict v = judge(clustered, seen, term);
        if (v == Verdict.ACCEPT) {
            return read;
        }
        read.unlock();
        if (v != Verdict.ACCEPT_NEWER) {
            throw refusal(v, seen, term, what);
        }
        Lock write = lock.writeLock();
        write.lock();
        try {
            // Judged again: another order may have brought a newer term meanwhile.
            Verdict again = judge(clustered, newest, term);
            if (again == Verdict.REFUSE_OLDER) {
                throw refusal(again, newest, term, what);
            }
            if (again == Verdict.ACCEPT_NEWER) {
                try {
                    persist(term);
                } catch (IOException e) {
                    throw new AgentException(
                            Status.Code.INTERNAL,
                            "cannot record coordinator leader term " + term + " in " + file + ": " + e.getMessage(),
                            e);
                }
                log.info("coordinator leader term {} (was {})", term, newest);
                newest = term;
            }
            read.lock(); // downgrade: the order runs under the read lock, as every other does
            return read;
        } finally {
            write.unlock();
        }
    }

    private static AgentException refusal(Verdict v, long newest, long term, String what) {
        String why = v == Verdict.REFUSE_OLDER
                ? "it carries coordinator leader term " + term + ", older than term " + newest
                        + " this agent has already seen (an order of a deposed leader)"
                : "this agent is a member of a cluster and takes it only from the coordinator leader, "
                        + "with the leader's term (the request carries none; newest term seen " + newest + ")";
        return new AgentException(Status.Code.FAILED_PRECONDITION, "refused " + what + ": " + why);
    }

    private void persist(long term) throws IOException {
        Path tmp = file.resolveSibling(FILE + ".tmp");
        try (FileChannel ch = FileChannel.open(
                tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer bytes = ByteBuffer.wrap((term + "\n").getBytes(StandardCharsets.US_ASCII));
            while (bytes.hasRemaining()) {
                ch.write(bytes);
            }
            ch.force(true);
        }
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        // The rename itself must survive a crash too.
        try (FileChannel dir = FileChannel.open(file.getParent(), StandardOpenOption.READ)) {
            dir.force(true);
        }
    }
}
