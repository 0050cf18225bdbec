package dev.ferry.cluster.coordinator;

import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterPaths.ReportName;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.RecordException;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.agent.MigrationRecord;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The records of finished migrations (`ferry report`), kept by the cluster in ZooKeeper under
 * {@link ClusterPaths#REPORTS}, one node each: they outlive the source host, whose own copy goes
 * with it, and every coordinator replica reads them. The leader writes one as a migration it ran
 * ends (built from the events it relayed, or the source's own record when it lost the stream),
 * behind its term's checks like every leader write, and trims the oldest beyond the count and the
 * age after each. A report is for reading: failing to keep one is logged, never fails the
 * migration.
 */
public final class MigrationReports {
    private static final Logger log = LoggerFactory.getLogger(MigrationReports.class);

    /**
     * ZooKeeper's default limit on a node is 1 MiB (jute.maxbuffer); a record is a few KiB per ten
     * rounds ({@link dev.ferry.agent.MigrationRecorder} bounds what it keeps), so one this large is
     * not a record worth failing over: it is left to the source's copy.
     */
    static final int MAX_BYTES = 512 * 1024;

    /** How many finished records are kept, and for how long (wall clock: an operator's days). */
    public record Retention(int count, Duration age) {
        public Retention {
            if (count < 1) {
                throw new IllegalArgumentException("the migration reports kept must be at least 1, got " + count);
            }
            if (!age.isPositive()) {
                throw new IllegalArgumentException("the migration reports' retention must be positive");
            }
        }
    }

    public static final Retention DEFAULT_RETENTION = new Retention(1000, Duration.ofDays(30));

    private final WriteGuard guard;
    private final ClusterStore store;
    private final Retention retention;
    private final Clocks clocks;

    MigrationReports(WriteGuard guard, Retention retention, Clocks clocks) {
        this.guard = guard;
        this.store = guard.store();
        this.retention = retention;
        this.clocks = clocks;
    }

    /**
     * Keeps {@code r} (finished) unless a record of its migration is kept already (a new leader
     * ending an intent its predecessor kept the record of), then trims.
     *
     * @throws NotLeaderException when this term ended; nothing else escapes
     */
    void keep(MigrationRecord r) {
        try {
            if (!r.hasSummary()) {
                throw new IllegalArgumentException("only a finished migration's record is kept");
            }
            List<ReportName> kept = names();
            if (kept.stream().anyMatch(n -> n.migrationId().equals(r.getMigrationId()))) {
                return;
            }
            byte[] data = r.toByteArray();
            if (data.length > MAX_BYTES) {
                log.warn(
                        "the record of migration {} is {} bytes, over the {} a report may take: the source keeps"
                                + " its own",
                        r.getMigrationId(),
                        data.length,
                        MAX_BYTES);
                return;
            }
            ReportName name = new ReportName(Math.max(0, r.getFinishedAtMs()), r.getVm(), r.getMigrationId());
            guard.write(List.of(store.create(ClusterPaths.report(name), data, CreateMode.PERSISTENT)));
            kept.add(name);
            trim(kept);
        } catch (NotLeaderException e) {
            throw e;
        } catch (KeeperException.NodeExistsException e) {
            // kept already, by an earlier try of this leader whose reply was lost
        } catch (Exception e) {
            log.warn("cannot keep the record of migration {}: {}", r.getMigrationId(), e.toString());
        }
    }

    /**
     * The kept record of migration {@code id}, or else (with {@code vm} given instead) the newest
     * kept one of that VM. A node that does not parse is skipped with a warning.
     */
    Optional<MigrationRecord> find(String id, String vm) throws Exception {
        List<ReportName> names = names();
        names.sort(Comparator.comparingLong(ReportName::finishedAtMs).reversed());
        for (ReportName n : names) {
            if (id.isEmpty() ? n.vm().equals(vm) : n.migrationId().equals(id)) {
                try {
                    Optional<Versioned<MigrationRecord>> v = store.report(n);
                    if (v.isPresent()) {
                        return Optional.of(v.get().value());
                    }
                } catch (RecordException e) {
                    log.warn("the kept report {} is unreadable: {}", n, e.getMessage());
                }
            }
        }
        return Optional.empty();
    }

    /** The kept reports' names, oldest first; nodes Ferry did not name are left out. */
    private List<ReportName> names() throws Exception {
        List<ReportName> out = new ArrayList<>();
        for (String child : store.children(ClusterPaths.REPORTS)) {
            ReportName.parse(child).ifPresent(out::add);
        }
        out.sort(Comparator.comparingLong(ReportName::finishedAtMs));
        return out;
    }

    /** Deletes the oldest reports beyond the count and those past the age, in one write. */
    private void trim(List<ReportName> oldestFirst) throws Exception {
        long oldest = clocks.wallMillis() - retention.age().toMillis();
        int excess = oldestFirst.size() - retention.count();
        List<org.apache.curator.framework.api.transaction.CuratorOp> drop = new ArrayList<>();
        for (ReportName n : oldestFirst) {
            if (excess > 0 || n.finishedAtMs() < oldest) {
                drop.add(store.delete(ClusterPaths.report(n), -1));
                excess--;
            }
        }
        if (!drop.isEmpty()) {
            guard.write(drop);
        }
    }
}
