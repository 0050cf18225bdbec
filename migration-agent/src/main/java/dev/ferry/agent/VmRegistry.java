package dev.ferry.agent;

import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.InstanceState;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.hypervisor.lease.LeaseFile;
import dev.ferry.hypervisor.storage.StorageRefusedException;
import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.proto.vm.VmStatus;
import io.grpc.Status;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The VMs this host owns, and the names reserved by incoming migrations. Lifecycle operations
 * (create, start, stop, delete) run here, each under the VM's own monitor.
 */
final class VmRegistry {
    private static final Logger log = LoggerFactory.getLogger(VmRegistry.class);
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,62}");

    private final String hostId;
    private final HypervisorDriver driver;
    private final Path dataDir;
    private final Path ramDir;
    private final ConcurrentMap<String, ManagedVm> vms = new ConcurrentHashMap<>();
    private final ConcurrentMap<String, String> reserved = new ConcurrentHashMap<>();
    // Leases of VMs arriving by migration, renewed with this host's standing until their commit.
    private final ConcurrentMap<String, LeaseFile> arrivingLeases = new ConcurrentHashMap<>();
    private final Ownership ownership;
    // Fencing takes it exclusively while it kills; a guest about to execute (start, arrival) holds it
    // shared across "still owned?" and "running", so no guest starts unseen by a fence.
    private final java.util.concurrent.locks.ReadWriteLock fenceLock =
            new java.util.concurrent.locks.ReentrantReadWriteLock();

    VmRegistry(String hostId, HypervisorDriver driver, Path dataDir, Path ramDir, Ownership ownership) {
        this.hostId = hostId;
        this.driver = driver;
        this.dataDir = dataDir;
        this.ramDir = ramDir;
        this.ownership = ownership;
    }

    String hostId() {
        return hostId;
    }

    HypervisorDriver driver() {
        return driver;
    }

    static void checkName(String name) throws AgentException {
        if (name == null || !NAME.matcher(name).matches()) {
            throw new AgentException(
                    Status.Code.INVALID_ARGUMENT,
                    "VM name must be 1-63 letters, digits, '.', '_' or '-' starting with a letter or digit, got '"
                            + name + "'");
        }
    }

    VmPaths paths(String name, String suffix) throws AgentException {
        Path run = dataDir.resolve("vms").resolve(name + suffix);
        try {
            Files.createDirectories(run.getParent());
            if (!Files.exists(run)) {
                Files.createDirectory(
                        run, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
            }
            Files.createDirectories(ramDir);
        } catch (IOException e) {
            throw new AgentException(
                    Status.Code.INTERNAL, "cannot create the directories of VM " + name + ": " + e.getMessage(), e);
        }
        return new VmPaths(
                run, ramDir.resolve(name + suffix + ".ram"), ownership.leases() ? run.resolve(LEASE_FILE) : null);
    }

    static final String LEASE_FILE = "lease";
    /** What a restarted agent needs to adopt a guest it finds running: the VM's status (spec, epoch). */
    static final String RECORD_FILE = "vm.pb";

    /**
     * Paths for a VM arriving by migration, its lease written first (with this host's standing:
     * the hypervisor process starts now and must not be stopped while the migration runs; it
     * cannot execute the guest before the commit anyway).
     */
    VmPaths arrivalPaths(String name) throws AgentException {
        VmPaths p = paths(name, "");
        if (p.leaseFile() != null) {
            try {
                LeaseFile old =
                        arrivingLeases.put(name, LeaseFile.create(p.leaseFile(), ownership.arrivalLeaseDeadline()));
                if (old != null) {
                    old.close();
                }
            } catch (IOException e) {
                throw new AgentException(Status.Code.INTERNAL, "cannot write the lease of VM " + name + ": " + e, e);
            }
        }
        return p;
    }

    /** Writes what a later agent process needs to adopt this VM if it finds it running. */
    private void record(ManagedVm m) {
        Path file = dataDir.resolve("vms").resolve(m.name).resolve(RECORD_FILE);
        try {
            Path tmp = file.resolveSibling(RECORD_FILE + ".tmp");
            Files.write(tmp, m.status(hostId, driver.name()).toByteArray());
            Files.move(
                    tmp,
                    file,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                    java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            log.warn("VM {}: cannot record it for a restarted agent: {}", m.name, e.getMessage());
        }
    }

    /**
     * Takes over the guests an earlier agent process on this host left running (it exited for an
     * upgrade, or died): each run directory with a record and a live hypervisor process becomes a
     * VM of this agent again. In a cluster it is FENCED until {@link #reclaimFenced} confirms this
     * host still owns it (its lease, if still current, lets it run on meanwhile; a lapsed one keeps
     * it stopped). Everything else an earlier agent left (RAM files, run directories of guests that
     * are gone) is removed. Returns the names adopted.
     */
    List<String> adoptLeftovers() {
        List<String> adopted = new ArrayList<>();
        Path vmsDir = dataDir.resolve("vms");
        if (Files.isDirectory(vmsDir)) {
            try (Stream<Path> s = Files.list(vmsDir)) {
                for (Path run : s.toList()) {
                    String name = run.getFileName().toString();
                    if (NAME.matcher(name).matches() && adoptOne(name, run)) {
                        adopted.add(name);
                    }
                }
            } catch (IOException e) {
                log.warn("cannot look for guests left in {}: {}", vmsDir, e.getMessage());
            }
        }
        for (Path dir : List.of(ramDir, vmsDir)) {
            if (!Files.isDirectory(dir)) {
                continue;
            }
            try (Stream<Path> s = Files.list(dir)) {
                for (Path p : s.toList()) {
                    String file = p.getFileName().toString();
                    if (file.equals(DirectoryLock.FILE)
                            || vms.containsKey(file)
                            || (file.endsWith(".ram") && vms.containsKey(file.substring(0, file.length() - 4)))) {
                        continue;
                    }
                    log.warn("removing {} left by an earlier agent on this host", p);
                    if (dir.equals(vmsDir)) {
                        driver.discardLeftover(new VmPaths(p, ramDir.resolve(file + ".ram")));
                    }
                    deleteTree(p);
                }
            } catch (IOException e) {
                log.warn("cannot clean {}: {}", dir, e.getMessage());
            }
        }
        return adopted;
    }

    private boolean adoptOne(String name, Path run) {
        VmStatus recorded;
        try {
            recorded = VmStatus.parseFrom(Files.readAllBytes(run.resolve(RECORD_FILE)));
        } catch (IOException e) {
            return false; // no record: nothing to adopt
        }
        VmPaths p =
                new VmPaths(run, ramDir.resolve(name + ".ram"), ownership.leases() ? run.resolve(LEASE_FILE) : null);
        Optional<VmInstance> found;
        try {
            found = driver.adopt(recorded.getSpec(), p);
        } catch (HypervisorException e) {
            log.warn("VM {}: cannot adopt what an earlier agent left running: {}", name, e.getMessage());
            return false;
        }
        if (found.isEmpty()) {
            return false;
        }
        VmInstance instance = found.get();
        ManagedVm m = new ManagedVm(recorded.getSpec(), instance, recorded.getEpoch());
        if (p.leaseFile() != null) {
            try {
                m.lease(LeaseFile.open(p.leaseFile()));
            } catch (IOException e) {
                log.warn("VM {}: its lease is unreadable ({}); it stays stopped until this host owns it", name, e);
                try {
                    m.lease(LeaseFile.create(p.leaseFile(), 0));
                } catch (IOException e2) {
                    instance.close();
                    return false;
                }
            }
        }
        if (ownership.clustered()) {
            m.state(
                    VmState.VM_STATE_FENCED,
                    "adopted from an earlier agent process; confirming this host still owns it");
        } else {
            m.state(
                    instance.state() == InstanceState.PAUSED ? VmState.VM_STATE_PAUSED : VmState.VM_STATE_RUNNING,
                    null);
        }
        watchExit(m, instance);
        vms.put(name, m);
        log.info(
                "VM {}: adopted at epoch {} from an earlier agent process ({})",
                name,
                m.epoch(),
                instance.frozen() ? "stopped by its lease" : "running");
        return true;
    }

    static void deleteTree(Path p) {
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        } catch (IOException e) {
            log.warn("cannot remove {}: {}", p, e.getMessage());
        }
    }

    /**
     * Reserves a name for an incoming migration at {@code epoch} (the source's); refused if the VM
     * exists here or is already incoming. A stale entry (stopped or failed at an older epoch, e.g. a
     * VM this host was fenced from and that has lived elsewhere since) gives way.
     */
    void reserve(String name, String migrationId, long epoch) throws AgentException {
        checkName(name);
        evictStale(name, epoch > 0 ? epoch + 1 : 0);
        if (vms.containsKey(name)) {
            throw new AgentException(
                    Status.Code.ALREADY_EXISTS, "a VM named '" + name + "' already exists on " + hostId);
        }
        String other = reserved.putIfAbsent(name, migrationId);
        if (other != null) {
            throw new AgentException(
                    Status.Code.ALREADY_EXISTS,
                    "VM '" + name + "' is already arriving on " + hostId + " (migration " + other + ")");
        }
        if (vms.containsKey(name)) {
            reserved.remove(name, migrationId);
            throw new AgentException(
                    Status.Code.ALREADY_EXISTS, "a VM named '" + name + "' already exists on " + hostId);
        }
    }

    void unreserve(String name, String migrationId) {
        if (reserved.remove(name, migrationId)) {
            LeaseFile l = arrivingLeases.remove(name);
            if (l != null) {
                l.close();
            }
        }
    }

    boolean isArriving(String name) {
        return reserved.containsKey(name);
    }

    /** An incoming migration committed: the VM is this host's, running, at {@code epoch}. */
    void adopt(VmSpec spec, VmInstance instance, long epoch, String migrationId) {
        ManagedVm m = new ManagedVm(spec, instance, epoch);
        m.lease(arrivingLeases.remove(spec.getName()));
        fenceLock.readLock().lock();
        try {
            try {
                ownership.confirm(spec.getName(), epoch);
                m.state(VmState.VM_STATE_RUNNING, null);
            } catch (AgentException e) {
                // Fenced between the commit and now: the arrival dies like every other VM here.
                log.warn(
                        "VM {} arrived at epoch {} but {} no longer owns it: {}",
                        spec.getName(),
                        epoch,
                        hostId,
                        e.getMessage());
                m.instance(null);
                instance.close();
                m.state(VmState.VM_STATE_FAILED, e.getMessage());
            }
            vms.put(spec.getName(), m);
        } finally {
            fenceLock.readLock().unlock();
        }
        reserved.remove(spec.getName(), migrationId);
        watchExit(m, instance);
        record(m);
    }

    ManagedVm create(VmSpec spec, boolean start, long epoch) throws AgentException {
        checkName(spec.getName());
        if (spec.getMemoryBytes() <= 0) {
            throw new AgentException(Status.Code.INVALID_ARGUMENT, "VM memory must be positive");
        }
        try {
            driver.validate(spec);
        } catch (HypervisorException e) {
            throw new AgentException(Status.Code.INVALID_ARGUMENT, e.getMessage(), e);
        }
        if (reserved.containsKey(spec.getName())) {
            throw new AgentException(
                    Status.Code.ALREADY_EXISTS, "VM '" + spec.getName() + "' is arriving by migration");
        }
        evictStale(spec.getName(), epoch);
        ManagedVm m = new ManagedVm(spec, null, epoch <= 0 ? 1 : epoch);
        if (vms.putIfAbsent(spec.getName(), m) != null) {
            throw new AgentException(
                    Status.Code.ALREADY_EXISTS, "a VM named '" + spec.getName() + "' already exists on " + hostId);
        }
        if (start) {
            try {
                start(spec.getName());
            } catch (AgentException e) {
                vms.remove(spec.getName(), m);
                throw e;
            }
        }
        return m;
    }

    /**
     * Drops {@code name} if it is a leftover of an older ownership: not running, at an epoch below
     * {@code newEpoch}. Only in a cluster, where the VM's record is the truth; requests without an
     * epoch (0) never evict anything.
     */
    private void evictStale(String name, long newEpoch) {
        ManagedVm old = vms.get(name);
        if (old == null || newEpoch <= 0 || !ownership.clustered()) {
            return;
        }
        synchronized (old) {
            VmState s = old.state();
            if (old.epoch() < newEpoch && (s == VmState.VM_STATE_STOPPED || s == VmState.VM_STATE_FAILED)) {
                closeInstance(old);
                vms.remove(name, old);
                deleteTree(dataDir.resolve("vms").resolve(name));
                log.info("VM {}: dropped the stale entry at epoch {} for epoch {}", name, old.epoch(), newEpoch);
            }
        }
    }

    boolean holds(String name) {
        ManagedVm m = vms.get(name);
        if (m == null) {
            return false;
        }
        if (m.starting()) {
            return true;
        }
        VmState s = m.state();
        return s == VmState.VM_STATE_RUNNING
                || s == VmState.VM_STATE_PAUSED
                || s == VmState.VM_STATE_MIGRATING_OUT
                || s == VmState.VM_STATE_FENCED;
    }

    ManagedVm get(String name) throws AgentException {
        ManagedVm m = vms.get(name);
        if (m == null) {
            throw AgentException.notFound(name);
        }
        return m;
    }

    ManagedVm start(String name) throws AgentException {
        ManagedVm m = get(name);
        synchronized (m) {
            VmState s = m.state();
            if (s == VmState.VM_STATE_RUNNING) {
                return m;
            }
            if (s == VmState.VM_STATE_PAUSED) {
                throw new AgentException(
                        Status.Code.FAILED_PRECONDITION,
                        "VM '" + name + "' is paused: "
                                + m.status(hostId, driver.name()).getReason());
            }
            if (s != VmState.VM_STATE_STOPPED && s != VmState.VM_STATE_FAILED) {
                throw new AgentException(Status.Code.FAILED_PRECONDITION, "VM '" + name + "' is " + s);
            }
            closeInstance(m);
            long epoch = m.epoch();
            m.starting(true);
            try {
                return startOwned(m, name, s, epoch);
            } finally {
                m.starting(false);
            }
        }
    }

    /** Under the VM's monitor: run lock, hypervisor instance, last check, guest running. */
    private ManagedVm startOwned(ManagedVm m, String name, VmState was, long epoch) throws AgentException {
        try {
            ownership.acquire(name, epoch);
        } catch (AgentException e) {
            m.state(was, e.getMessage());
            throw e;
        }
        VmInstance instance;
        try {
            VmPaths p = paths(name, "");
            if (p.leaseFile() != null) {
                // Written before the hypervisor starts: it stops the guest at once without one.
                LeaseFile old = m.lease();
                if (old != null) {
                    old.close();
                }
                m.lease(LeaseFile.create(p.leaseFile(), ownership.leaseDeadline(name, epoch)));
            }
            instance = driver.create(m.spec, p);
        } catch (HypervisorException e) {
            ownership.release(name, epoch);
            m.state(VmState.VM_STATE_FAILED, e.getMessage());
            throw new AgentException(code(e), "cannot create VM '" + name + "': " + e.getMessage(), e);
        } catch (IOException e) {
            ownership.release(name, epoch);
            m.state(VmState.VM_STATE_FAILED, e.getMessage());
            throw new AgentException(Status.Code.INTERNAL, "cannot write the lease of VM '" + name + "': " + e, e);
        } catch (AgentException e) {
            ownership.release(name, epoch);
            throw e;
        }
        fenceLock.readLock().lock();
        try {
            try {
                ownership.confirm(name, epoch);
            } catch (AgentException e) {
                instance.close();
                ownership.release(name, epoch);
                m.state(was, e.getMessage());
                throw e;
            }
            try {
                instance.start();
            } catch (HypervisorException e) {
                instance.close();
                ownership.release(name, epoch);
                m.state(VmState.VM_STATE_FAILED, e.getMessage());
                throw new AgentException(
                        e.getCause() instanceof StorageRefusedException
                                ? Status.Code.INVALID_ARGUMENT
                                : Status.Code.INTERNAL,
                        "cannot start VM '" + name + "': " + e.getMessage(),
                        e);
            }
            m.instance(instance);
        } finally {
            fenceLock.readLock().unlock();
        }
        watchExit(m, instance);
        m.state(VmState.VM_STATE_RUNNING, null);
        record(m);
        log.info("VM {} started on {} (epoch {})", name, hostId, m.epoch());
        return m;
    }

    private void watchExit(ManagedVm m, VmInstance instance) {
        instance.onUnexpectedExit(why -> {
            synchronized (m) {
                if (m.instance() == instance && m.state() != VmState.VM_STATE_STOPPED) {
                    log.error("VM {} ended unexpectedly: {}", m.name, why);
                    m.state(VmState.VM_STATE_FAILED, why);
                    // The run lock goes with it, so that the cluster can restart the VM.
                    ownership.release(m.name, m.epoch());
                }
            }
        });
    }

    private static Status.Code code(HypervisorException e) {
        if (e.getCause() instanceof StorageRefusedException) {
            // A file of the spec is outside the storage roots now (it was swapped after
            // validation): the spec is what is wrong, not this host.
            return Status.Code.INVALID_ARGUMENT;
        }
        String msg = e.getMessage();
        return msg != null && msg.contains("MiB free") ? Status.Code.RESOURCE_EXHAUSTED : Status.Code.INTERNAL;
    }

    ManagedVm stop(String name) throws AgentException {
        ManagedVm m = get(name);
        synchronized (m) {
            if (m.state() == VmState.VM_STATE_MIGRATING_OUT) {
                throw new AgentException(
                        Status.Code.FAILED_PRECONDITION, "VM '" + name + "' is migrating; cancel the migration first");
            }
            closeInstance(m);
            m.state(VmState.VM_STATE_STOPPED, null);
            ownership.release(name, m.epoch());
            log.info("VM {} stopped on {}", name, hostId);
            return m;
        }
    }

    ManagedVm delete(String name) throws AgentException {
        ManagedVm m = get(name);
        synchronized (m) {
            if (m.state() == VmState.VM_STATE_MIGRATING_OUT) {
                throw new AgentException(
                        Status.Code.FAILED_PRECONDITION, "VM '" + name + "' is migrating; cancel the migration first");
            }
            closeInstance(m);
            m.state(VmState.VM_STATE_STOPPED, "deleted");
            ownership.release(name, m.epoch());
            vms.remove(name, m);
            deleteTree(dataDir.resolve("vms").resolve(name));
            log.info("VM {} deleted on {}", name, hostId);
            return m;
        }
    }

    /** The VM moved away: drop it and free its memory. */
    void release(ManagedVm m) {
        synchronized (m) {
            closeInstance(m);
            m.state(VmState.VM_STATE_STOPPED, "migrated away");
            // Normally a no-op: the commit handed the run lock over. Releases only a lock this host holds.
            ownership.release(m.name, m.epoch());
            vms.remove(m.name, m);
            deleteTree(dataDir.resolve("vms").resolve(m.name));
        }
    }

    private void closeInstance(ManagedVm m) {
        VmInstance i = m.instance();
        if (i != null) {
            try {
                if (!i.frozen()) {
                    i.stop();
                }
            } catch (HypervisorException | RuntimeException e) {
                log.warn("VM {}: stop failed ({}); closing it", m.name, e.getMessage());
            }
            i.close();
            m.instance(null);
        }
        LeaseFile l = m.lease();
        if (l != null) {
            l.close();
            m.lease(null);
        }
    }

    List<VmStatus> list() {
        List<VmStatus> out = new ArrayList<>();
        for (ManagedVm m : vms.values()) {
            out.add(m.status(hostId, driver.name()));
        }
        out.sort(Comparator.comparing(s -> s.getSpec().getName()));
        return out;
    }

    /**
     * This host's VMs by state ("running", "migrating_out", ...; every state, 0 when none), read
     * without any VM's monitor: a scrape never waits behind a start.
     */
    java.util.Map<String, Integer> countByState() {
        java.util.Map<String, Integer> counts = new java.util.TreeMap<>();
        for (VmState s : VmState.values()) {
            if (s != VmState.VM_STATE_INVALID && s != VmState.UNRECOGNIZED) {
                counts.put(stateName(s), 0);
            }
        }
        for (ManagedVm m : vms.values()) {
            counts.merge(stateName(m.stateUnlocked()), 1, Integer::sum);
        }
        return counts;
    }

    private static String stateName(VmState s) {
        return s.name().substring("VM_STATE_".length()).toLowerCase(java.util.Locale.ROOT);
    }

    VmStatus status(ManagedVm m) {
        return m.status(hostId, driver.name());
    }

    /** Stops every VM (agent shutdown that takes its guests with it). */
    void closeAll() {
        for (ManagedVm m : vms.values()) {
            synchronized (m) {
                closeInstance(m);
                ownership.release(m.name, m.epoch());
            }
        }
        vms.clear();
    }

    /**
     * An agent exiting for a restart (an upgrade): guests that live outside the agent keep running
     * under their leases and keep their run locks and files, for the next agent process to adopt
     * ({@link #adoptLeftovers}); guests that live inside it (sim) stop. Returns the names left
     * running.
     */
    List<String> detachAll() {
        List<String> left = new ArrayList<>();
        for (ManagedVm m : vms.values()) {
            synchronized (m) {
                VmInstance i = m.instance();
                if (i != null && i.survivesAgent()) {
                    PreCopySender sender = m.migration();
                    if (sender != null) {
                        sender.cancel();
                    }
                    record(m);
                    i.detach();
                    m.instance(null);
                    LeaseFile l = m.lease();
                    if (l != null) {
                        l.close();
                    }
                    left.add(m.name);
                } else {
                    closeInstance(m);
                    ownership.release(m.name, m.epoch());
                }
            }
        }
        vms.clear();
        left.sort(null);
        return left;
    }

    /**
     * The fence: every guest of this host stops executing at once (its lease revoked, its
     * hypervisor frozen), because the host has lost its standing in the cluster and may no longer
     * own anything. Nothing is killed yet: a guest whose ownership the cluster confirms again
     * ({@link #reclaimFenced}) runs on as if nothing happened, one another host now owns is killed
     * then. First every guest freezes without waiting for any VM's monitor (an operation in
     * progress may hold one for seconds, and the fence has a deadline); then, under each monitor,
     * migrations are cancelled and the VM is marked FENCED with {@code reason}. Returns the names
     * of the VMs that were frozen.
     */
    List<String> fenceAll(String reason) {
        List<String> frozen = new ArrayList<>();
        fenceLock.writeLock().lock();
        try {
            for (ManagedVm m : vms.values()) {
                VmInstance i = m.instanceUnlocked();
                if (i != null) {
                    freeze(m, i);
                    frozen.add(m.name);
                }
            }
        } finally {
            fenceLock.writeLock().unlock();
        }
        for (ManagedVm m : vms.values()) {
            synchronized (m) {
                PreCopySender sender = m.migration();
                if (sender != null) {
                    sender.cancel();
                }
                VmInstance i = m.instance();
                if (i != null && !frozen.contains(m.name)) {
                    freeze(m, i);
                    frozen.add(m.name);
                }
                if (i != null) {
                    VmState s = m.state();
                    if (s == VmState.VM_STATE_RUNNING
                            || s == VmState.VM_STATE_PAUSED
                            || s == VmState.VM_STATE_MIGRATING_OUT) {
                        m.state(VmState.VM_STATE_FENCED, reason);
                    }
                } else if (m.state() != VmState.VM_STATE_STOPPED && m.state() != VmState.VM_STATE_FAILED) {
                    m.state(VmState.VM_STATE_FAILED, reason);
                }
            }
        }
        for (LeaseFile l : arrivingLeases.values()) {
            l.revoke();
        }
        frozen.sort(null);
        return frozen;
    }

    private void freeze(ManagedVm m, VmInstance i) {
        LeaseFile l = m.lease();
        if (l != null) {
            l.revoke();
        }
        try {
            i.freeze();
        } catch (HypervisorException | RuntimeException e) {
            // Its revoked lease stops it within the hook's poll interval; if even that cannot work
            // (no hook), killing it is the only safe answer.
            log.error("VM {}: cannot freeze it ({}); killing it", m.name, e.getMessage());
            i.close();
        }
    }

    /** True while some VM here waits, frozen, for the cluster to confirm this host still owns it. */
    boolean anyFenced() {
        for (ManagedVm m : vms.values()) {
            if (m.state() == VmState.VM_STATE_FENCED) {
                return true;
            }
        }
        return false;
    }

    /**
     * For every FENCED VM, asks the cluster whether this host still owns it ({@link
     * Ownership#reclaim}): if so it runs on (its lease renewed, the guest thawed, a migration's
     * pause undone); if another host owns it now, this copy dies and the VM is marked FAILED with
     * the reason; if the cluster cannot tell yet, it stays frozen. Returns what happened, by VM.
     */
    java.util.Map<String, String> reclaimFenced() {
        java.util.Map<String, String> outcome = new java.util.TreeMap<>();
        for (ManagedVm m : vms.values()) {
            synchronized (m) {
                if (m.state() != VmState.VM_STATE_FENCED) {
                    continue;
                }
                VmInstance i = m.instance();
                if (i == null) {
                    m.state(
                            VmState.VM_STATE_FAILED,
                            m.status(hostId, driver.name()).getReason());
                    continue;
                }
                try {
                    ownership.reclaim(m.name, m.epoch());
                } catch (AgentException e) {
                    if (e.code() == Status.Code.FAILED_PRECONDITION) {
                        log.warn("VM {}: no longer this host's ({}); killing the frozen copy", m.name, e.getMessage());
                        closeInstance(m);
                        m.state(
                                VmState.VM_STATE_FAILED,
                                "fenced, and the cluster gave it to another host: " + e.getMessage());
                        // Not this host's any more: nothing of it stays (the log says why it went).
                        vms.remove(m.name, m);
                        deleteTree(dataDir.resolve("vms").resolve(m.name));
                        outcome.put(m.name, "killed: " + e.getMessage());
                    } else {
                        outcome.put(m.name, "still fenced: " + e.getMessage());
                    }
                    continue;
                }
                try {
                    unfence(m, i);
                    outcome.put(m.name, "running again");
                } catch (HypervisorException | AgentException e) {
                    log.warn("VM {}: owned again but cannot run on yet: {}", m.name, e.getMessage());
                    outcome.put(m.name, "owned, not yet running: " + e.getMessage());
                }
            }
        }
        return outcome;
    }

    /** Under m's monitor, with the run lock back: lease, thaw, and a migration's pause undone. */
    private void unfence(ManagedVm m, VmInstance i) throws HypervisorException, AgentException {
        LeaseFile l = m.lease();
        long deadline = ownership.leaseDeadline(m.name, m.epoch());
        if (l != null) {
            if (deadline - System.nanoTime() <= 0) {
                throw new AgentException(Status.Code.UNAVAILABLE, "no current lease for VM " + m.name);
            }
            l.grantUntil(deadline);
        }
        fenceLock.readLock().lock();
        try {
            ownership.confirm(m.name, m.epoch());
            i.thaw();
            if (i.state() == InstanceState.PAUSED) {
                // Paused by a migration the fence cut short: its commit never happened (this host
                // still owns the VM at the same epoch), so the source resumes, as after any failure.
                i.resume();
            }
            m.state(VmState.VM_STATE_RUNNING, "fenced, then confirmed as this host's again");
        } finally {
            fenceLock.readLock().unlock();
        }
        record(m);
        log.info("VM {}: confirmed as {}'s at epoch {}; running again", m.name, hostId, m.epoch());
    }

    /**
     * Renews the leases of the guests this host owns and of those arriving, as far as its
     * evidence reaches ({@link Ownership#leaseDeadline}), and lets a guest that its lapsed lease
     * stopped run again once its lease is current. FENCED guests get nothing: they wait for
     * {@link #reclaimFenced}. Called often (a fraction of the lease): a frozen agent calls nothing,
     * and then every lease lapses by itself.
     */
    void renewLeases() {
        for (ManagedVm m : vms.values()) {
            LeaseFile l = m.lease();
            VmInstance i = m.instanceUnlocked();
            if (l == null || i == null) {
                continue;
            }
            VmState s = m.state();
            if (s != VmState.VM_STATE_RUNNING && s != VmState.VM_STATE_PAUSED && s != VmState.VM_STATE_MIGRATING_OUT) {
                continue;
            }
            long deadline = ownership.leaseDeadline(m.name, m.epoch());
            try {
                if (deadline - l.deadline() > 0) {
                    l.grantUntil(deadline);
                }
                if (!l.lapsed() && i.frozen()) {
                    log.info("VM {}: its lease is current again; continuing the guest", m.name);
                    i.thaw();
                }
            } catch (HypervisorException | RuntimeException e) {
                log.warn("VM {}: cannot renew its lease: {}", m.name, e.toString());
            }
        }
        long arrival = ownership.arrivalLeaseDeadline();
        for (LeaseFile l : arrivingLeases.values()) {
            try {
                if (arrival - l.deadline() > 0) {
                    l.grantUntil(arrival);
                }
            } catch (RuntimeException e) {
                log.debug("arriving lease {}: {}", l, e.toString());
            }
        }
    }
}
