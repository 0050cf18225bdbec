package dev.ferry.agent.cluster;

import dev.ferry.agent.AgentException;
import dev.ferry.agent.Ownership;
import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.Versioned;
import dev.ferry.proto.cluster.RunningRecord;
import dev.ferry.proto.cluster.VmRecord;
import io.grpc.Status;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The run lock of a VM, {@code /running/<vm>}: an ephemeral node of the owner's session, created
 * just before the owner starts the VM and only in the same transaction as a check that the VM's
 * record still names this host at the epoch it starts at. While the node exists no other host can
 * take it, so a VM whose host is cut off cannot start elsewhere until that host's session has
 * ended (and the host has fenced).
 */
final class ZkOwnership implements Ownership {
    private static final Logger log = LoggerFactory.getLogger(ZkOwnership.class);
    private static final int CONFLICT_RETRIES = 5;

    /** A lock this host took or tried to take; {@code wanted} false once the VM no longer runs here. */
    private record Tracked(long epoch, long sessionId, boolean wanted) {}

    private final ClusterMember member;
    private final ConcurrentMap<String, Tracked> tracked = new ConcurrentHashMap<>();

    ZkOwnership(ClusterMember member) {
        this.member = member;
    }

    @Override
    public void acquire(String vm, long epoch) throws AgentException {
        ClusterMember.Session s = member.memberSession("start VM '" + vm + "'");
        String host = member.hostId();
        String lock = ClusterPaths.running(vm);
        for (int attempt = 0; ; attempt++) {
            try {
                Optional<Versioned<VmRecord>> record = s.store.vm(vm);
                if (record.isEmpty()) {
                    throw new AgentException(
                            Status.Code.FAILED_PRECONDITION,
                            "VM '" + vm + "' has no record in the cluster; " + host + " may not run it");
                }
                VmRecord r = record.get().value();
                if (!r.getOwner().equals(host) || r.getEpoch() != epoch) {
                    throw new AgentException(
                            Status.Code.FAILED_PRECONDITION,
                            "VM '" + vm + "' belongs to " + r.getOwner() + " at epoch " + r.getEpoch() + ", not to "
                                    + host + " at epoch " + epoch);
                }
                tracked.put(vm, new Tracked(epoch, s.id, true));
                RunningRecord running = RunningRecord.newBuilder()
                        .setSchemaVersion(Records.SCHEMA_VERSION)
                        .setHostId(host)
                        .setEpoch(epoch)
                        .setSinceMs(System.currentTimeMillis())
                        .build();
                s.store.commit(
                        s.store.check(record.get().path(), record.get().version()),
                        s.store.create(lock, running, CreateMode.EPHEMERAL));
                log.debug("{} took the run lock of {} at epoch {}", host, vm, epoch);
                return;
            } catch (KeeperException e) {
                int failed = ClusterStore.failedOp(e);
                if (failed == 1 && e.code() == KeeperException.Code.NODEEXISTS) {
                    if (heldByUs(s, vm, epoch)) {
                        return;
                    }
                    tracked.remove(vm);
                    throw new AgentException(
                            Status.Code.FAILED_PRECONDITION,
                            "VM '" + vm + "' may still run elsewhere: " + describeHolder(s, vm)
                                    + "; its run lock is held until that host's session ends");
                }
                if (failed == 0 && attempt < CONFLICT_RETRIES) {
                    continue; // the record changed between our read and our write: read again
                }
                // Unknown outcome: the lock may exist. The VM will not start, so the audit removes it.
                tracked.put(vm, new Tracked(epoch, s.id, false));
                throw new AgentException(
                        Status.Code.UNAVAILABLE, "cannot take the run lock of VM '" + vm + "': " + e.getMessage());
            } catch (AgentException e) {
                throw e;
            } catch (Exception e) {
                tracked.put(vm, new Tracked(epoch, s.id, false));
                throw new AgentException(
                        Status.Code.UNAVAILABLE, "cannot take the run lock of VM '" + vm + "': " + e, e);
            }
        }
    }

    @Override
    public boolean leases() {
        return true;
    }

    @Override
    public long leaseDeadline(String vm, long epoch) {
        ClusterMember.Session s = member.anySession();
        Tracked t = tracked.get(vm);
        if (s == null || t == null || !t.wanted() || t.sessionId() != s.id || t.epoch() != epoch) {
            return 0;
        }
        return member.leaseDeadline(s);
    }

    @Override
    public long arrivalLeaseDeadline() {
        return member.leaseDeadline(member.anySession());
    }

    /**
     * Takes the run lock back for a guest that exists here already. Under a session that still
     * holds the lock (the agent reconnected, or resumed its predecessor's session) it is only
     * tracked again. Otherwise, while the record names this host at {@code epoch}: one transaction
     * rewrites the record unchanged at the version read (so that a leader restarting the VM at
     * that version fails, and a restart that got in first makes this fail) and creates the lock.
     */
    @Override
    public void reclaim(String vm, long epoch) throws AgentException {
        ClusterMember.Session s = member.memberSession("reclaim VM '" + vm + "'");
        String host = member.hostId();
        for (int attempt = 0; ; attempt++) {
            try {
                s.store.sync(ClusterPaths.vm(vm), java.time.Duration.ofSeconds(5));
                Optional<Versioned<VmRecord>> record = s.store.vm(vm);
                if (record.isEmpty()) {
                    throw new AgentException(
                            Status.Code.FAILED_PRECONDITION, "VM '" + vm + "' was deleted from the cluster");
                }
                VmRecord r = record.get().value();
                if (!r.getOwner().equals(host) || r.getEpoch() != epoch) {
                    throw new AgentException(
                            Status.Code.FAILED_PRECONDITION,
                            "VM '" + vm + "' belongs to " + r.getOwner() + " at epoch " + r.getEpoch() + " now, not to "
                                    + host + " at epoch " + epoch);
                }
                Optional<Versioned<RunningRecord>> lock = s.store.running(vm);
                if (lock.isPresent()) {
                    if (lock.get().ephemeralOwner() == s.id
                            && lock.get().value().getEpoch() == epoch) {
                        tracked.put(vm, new Tracked(epoch, s.id, true));
                        return;
                    }
                    throw new AgentException(
                            Status.Code.UNAVAILABLE,
                            "the run lock of VM '" + vm + "' is still held by session 0x"
                                    + Long.toHexString(lock.get().ephemeralOwner()) + " ("
                                    + lock.get().value().getHostId() + "); waiting for it to end");
                }
                tracked.put(vm, new Tracked(epoch, s.id, true));
                RunningRecord running = RunningRecord.newBuilder()
                        .setSchemaVersion(Records.SCHEMA_VERSION)
                        .setHostId(host)
                        .setEpoch(epoch)
                        .setSinceMs(System.currentTimeMillis())
                        .build();
                s.store.commit(
                        s.store.set(record.get().path(), r, record.get().version()),
                        s.store.create(ClusterPaths.running(vm), running, CreateMode.EPHEMERAL));
                log.info("{} took the run lock of {} back at epoch {}", host, vm, epoch);
                return;
            } catch (KeeperException e) {
                tracked.remove(vm);
                if (ClusterStore.failedOp(e) >= 0 && attempt < CONFLICT_RETRIES) {
                    continue; // the record or the lock changed between our read and our write: read again
                }
                throw new AgentException(
                        Status.Code.UNAVAILABLE, "cannot take the run lock of VM '" + vm + "' back: " + e.getMessage());
            } catch (AgentException e) {
                throw e;
            } catch (Exception e) {
                tracked.remove(vm);
                throw new AgentException(
                        Status.Code.UNAVAILABLE, "cannot take the run lock of VM '" + vm + "' back: " + e, e);
            }
        }
    }

    @Override
    public void confirm(String vm, long epoch) throws AgentException {
        ClusterMember.Session s = member.memberSession("run VM '" + vm + "'");
        Tracked t = tracked.get(vm);
        if (t == null || !t.wanted() || t.sessionId() != s.id || t.epoch() != epoch) {
            throw new AgentException(
                    Status.Code.FAILED_PRECONDITION,
                    member.hostId() + " does not hold the run lock of VM '" + vm + "' at epoch " + epoch
                            + " under its current session");
        }
    }

    private static boolean heldByUs(ClusterMember.Session s, String vm, long epoch) {
        try {
            Optional<Versioned<RunningRecord>> held = s.store.running(vm);
            return held.isPresent()
                    && held.get().ephemeralOwner() == s.id
                    && held.get().value().getEpoch() == epoch;
        } catch (Exception e) {
            return false;
        }
    }

    private static String describeHolder(ClusterMember.Session s, String vm) {
        try {
            return s.store
                    .running(vm)
                    .map(v -> v.value().getHostId() + " holds it at epoch "
                            + v.value().getEpoch())
                    .orElse("its lock was just released");
        } catch (Exception e) {
            return "held by another session";
        }
    }

    @Override
    public void release(String vm, long epoch) {
        Tracked t = tracked.get(vm);
        if (t == null) {
            return;
        }
        tracked.put(vm, new Tracked(t.epoch(), t.sessionId(), false));
        member.background().execute(() -> tryRelease(vm));
    }

    /** Deletes our lock of {@code vm} if this session holds it; forgets it once settled. */
    private void tryRelease(String vm) {
        Tracked t = tracked.get(vm);
        if (t == null || t.wanted()) {
            return;
        }
        ClusterMember.Session s = member.anySession();
        if (s == null || s.id != t.sessionId()) {
            // Another session now: the old session's lock went with it.
            tracked.remove(vm, t);
            return;
        }
        try {
            Optional<Versioned<RunningRecord>> held = s.store.running(vm);
            if (held.isPresent() && held.get().ephemeralOwner() == s.id) {
                s.store.commit(s.store.delete(held.get().path(), held.get().version()));
                log.debug("{} released the run lock of {}", member.hostId(), vm);
            }
            tracked.remove(vm, t);
        } catch (Exception e) {
            log.debug("{}: cannot release the run lock of {} yet: {}", member.hostId(), vm, e.toString());
        }
    }

    /**
     * Keeps locks and VMs in step: a lock taken for a VM that does not run here (its start failed
     * after the lock, or a release was lost) goes.
     */
    void audit() {
        ClusterMember.Host host = member.host();
        if (host == null || member.state() != ClusterMember.State.MEMBER) {
            return;
        }
        for (var e : tracked.entrySet()) {
            String vm = e.getKey();
            Tracked t = e.getValue();
            if (t.wanted() && !host.holds(vm)) {
                // Give a start in progress its time: only a lock wanted for two audits without a VM goes.
                if (!suspect.add(vm)) {
                    suspect.remove(vm);
                    tracked.replace(vm, t, new Tracked(t.epoch(), t.sessionId(), false));
                    tryRelease(vm);
                }
            } else {
                suspect.remove(vm);
                if (!t.wanted()) {
                    tryRelease(vm);
                }
            }
        }
    }

    private final java.util.Set<String> suspect = ConcurrentHashMap.newKeySet();

    /** A lock taken by the migration commit (the destination's). */
    void track(String vm, long epoch, long sessionId) {
        tracked.put(vm, new Tracked(epoch, sessionId, true));
    }

    /** After a fence: the old session's locks are gone with it. */
    void forgetAll() {
        tracked.clear();
        suspect.clear();
    }
}
