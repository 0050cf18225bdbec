package dev.ferry.agent;

import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationEvent;
import dev.ferry.proto.agent.MigrationRecord;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The records of this host's outgoing migrations (what `ferry report` shows): the running ones as
 * they go, and the last finished ones, in memory and as one file each under {@code
 * DATA_DIR/migrations}, so that an operator can look back at a migration after it ended and after
 * the agent restarted. The source keeps them because it alone sees every round, whoever leads the
 * cluster meanwhile; the coordinator asks it (GetMigrationRecords).
 *
 * <p>Bounded by count and by age ({@link Retention}); a file that does not parse is set aside
 * with a warning, never fatal: a record is for reading, nothing decides on it.
 */
final class MigrationRecords {
    private static final Logger log = LoggerFactory.getLogger(MigrationRecords.class);
    private static final String SUFFIX = ".record";

    /** How many finished records are kept, and for how long. */
    record Retention(int count, Duration age) {
        static final Retention DEFAULT = new Retention(200, Duration.ofDays(30));

        Retention {
            if (count < 1) {
                throw new IllegalArgumentException("the migration records kept must be at least 1, got " + count);
            }
            if (!age.isPositive()) {
                throw new IllegalArgumentException("the migration records' retention must be positive");
            }
        }
    }

    private final Path dir;
    private final Retention retention;
    private final Clock clock;
    private final AtomicLong sequence = new AtomicLong();
    /** Finished records by file name (names sort by finish time), oldest first. */
    private final Map<String, MigrationRecord> finished = new LinkedHashMap<>();

    private final Map<String, MigrationRecorder> running = new LinkedHashMap<>();

    MigrationRecords(Path dir, Retention retention, Clock clock) {
        this.dir = dir;
        this.retention = retention;
        this.clock = clock;
    }

    /** Reads the records an earlier agent process kept. */
    synchronized MigrationRecords load() throws IOException {
        Files.createDirectories(dir);
        List<Path> files;
        try (Stream<Path> s = Files.list(dir)) {
            files = s.filter(p -> p.getFileName().toString().endsWith(SUFFIX))
                    .sorted(Comparator.comparing(p -> p.getFileName().toString()))
                    .toList();
        }
        for (Path f : files) {
            try (InputStream in = Files.newInputStream(f)) {
                finished.put(f.getFileName().toString(), MigrationRecord.parseFrom(in));
            } catch (IOException e) {
                log.warn("migration record {} is unreadable ({}); set aside", f, e.getMessage());
                Files.move(f, f.resolveSibling(f.getFileName() + ".bad"), StandardCopyOption.REPLACE_EXISTING);
            }
        }
        trim();
        return this;
    }

    /**
     * Starts recording {@code req}'s migration: the returned consumer takes its events (pass them
     * on to the caller as well), and records the end when the terminal event comes.
     */
    Consumer<MigrationEvent> recorder(MigrateRequest req, String migrationId, String sourceHost) {
        MigrationRecorder r = new MigrationRecorder(
                migrationId, req.getVm(), sourceHost, req.getTargetHost(), req.getOptions(), clock::millis);
        synchronized (this) {
            running.put(migrationId, r);
        }
        return e -> {
            r.accept(e);
            java.util.Optional<MigrationRecord> done = r.finished();
            boolean first;
            synchronized (this) {
                first = done.isPresent() && running.remove(migrationId) != null;
            }
            if (first) {
                keep(done.get());
            }
        };
    }

    private void keep(MigrationRecord r) {
        String name =
                String.format("%015d-%06d%s", r.getFinishedAtMs(), sequence.incrementAndGet() % 1_000_000, SUFFIX);
        try {
            Path tmp = dir.resolve(name + ".tmp");
            Files.write(tmp, r.toByteArray());
            Files.move(tmp, dir.resolve(name), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            // Kept in memory still: the report works until the agent restarts.
            log.warn("cannot keep the record of migration {} on disk: {}", r.getMigrationId(), e.getMessage());
        }
        synchronized (this) {
            finished.put(name, r);
            trim();
        }
    }

    /** Drops the oldest records beyond the count and those older than the retention. */
    private void trim() {
        long oldest = clock.millis() - retention.age().toMillis();
        List<String> drop = new ArrayList<>();
        int excess = finished.size() - retention.count();
        for (Map.Entry<String, MigrationRecord> e : finished.entrySet()) {
            if (excess > 0 || e.getValue().getFinishedAtMs() < oldest) {
                drop.add(e.getKey());
                excess--;
            }
        }
        for (String name : drop) {
            finished.remove(name);
            try {
                Files.deleteIfExists(dir.resolve(name));
            } catch (IOException e) {
                log.warn("cannot delete the old migration record {}: {}", name, e.getMessage());
            }
        }
    }

    /**
     * The records with {@code migrationId}, or else (empty id) of {@code vm}, or else every one:
     * running ones first, then the finished ones, newest first.
     */
    synchronized List<MigrationRecord> find(String migrationId, String vm) {
        trim();
        List<MigrationRecord> out = new ArrayList<>();
        List<MigrationRecord> now = new ArrayList<>();
        for (MigrationRecorder r : running.values()) {
            now.add(r.now());
        }
        java.util.Collections.reverse(now);
        List<MigrationRecord> old = new ArrayList<>(finished.values());
        java.util.Collections.reverse(old);
        for (MigrationRecord r : Stream.concat(now.stream(), old.stream()).toList()) {
            boolean match = !migrationId.isEmpty()
                    ? r.getMigrationId().equals(migrationId)
                    : vm.isEmpty() || r.getVm().equals(vm);
            if (match) {
                out.add(r);
            }
        }
        return out;
    }
}
