package dev.ferry.agent;

import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
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
        return new VmPaths(run, ramDir.resolve(name + suffix + ".ram"));
    }

    /** Removes RAM files and run directories left by an earlier agent process that died. */
    void cleanStaleFiles() {
        for (Path dir : List.of(ramDir, dataDir.resolve("vms"))) {
            if (!Files.isDirectory(dir)) {
                continue;
            }
            try (Stream<Path> s = Files.list(dir)) {
                for (Path p : s.toList()) {
                    if (p.getFileName().toString().equals(DirectoryLock.FILE)) {
                        continue;
                    }
                    log.warn("removing {} left by an earlier agent on this host", p);
                    deleteTree(p);
                }
            } catch (IOException e) {
                log.warn("cannot clean {}: {}", dir, e.getMessage());
            }
        }
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
        reserved.remove(name, migrationId);
    }

    boolean isArriving(String name) {
        return reserved.containsKey(name);
    }

    /** An incoming migration committed: the VM is this host's, running, at {@code epoch}. */
    void adopt(VmSpec spec, VmInstance instance, long epoch, String migrationId) {
        ManagedVm m = new ManagedVm(spec, instance, epoch);
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
        return s == VmState.VM_STATE_RUNNING || s == VmState.VM_STATE_PAUSED || s == VmState.VM_STATE_MIGRATING_OUT;
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
            instance = driver.create(m.spec, paths(name, ""));
        } catch (HypervisorException e) {
            ownership.release(name, epoch);
            m.state(VmState.VM_STATE_FAILED, e.getMessage());
            throw new AgentException(code(e), "cannot create VM '" + name + "': " + e.getMessage(), e);
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
                throw new AgentException(Status.Code.INTERNAL, "cannot start VM '" + name + "': " + e.getMessage(), e);
            }
            m.instance(instance);
        } finally {
            fenceLock.readLock().unlock();
        }
        instance.onUnexpectedExit(why -> {
            synchronized (m) {
                if (m.instance() == instance && m.state() != VmState.VM_STATE_STOPPED) {
                    log.error("VM {} ended unexpectedly: {}", name, why);
                    m.state(VmState.VM_STATE_FAILED, why);
                    // The run lock goes with it, so that the cluster can restart the VM.
                    ownership.release(name, m.epoch());
                }
            }
        });
        m.state(VmState.VM_STATE_RUNNING, null);
        log.info("VM {} started on {} (epoch {})", name, hostId, m.epoch());
        return m;
    }

    private static Status.Code code(HypervisorException e) {
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
                i.stop();
            } catch (HypervisorException | RuntimeException e) {
                log.warn("VM {}: stop failed ({}); closing it", m.name, e.getMessage());
            }
            i.close();
            m.instance(null);
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

    VmStatus status(ManagedVm m) {
        return m.status(hostId, driver.name());
    }

    /** Stops every VM (agent shutdown). */
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
     * Kills every VM of this host at once: the host lost its cluster session and may no longer own
     * anything. First every instance dies without waiting for any VM's monitor (an operation in
     * progress may hold one for seconds, and the fence has a deadline); then, under each monitor,
     * whatever started meanwhile dies too and the VM is marked FAILED with {@code reason}. Returns
     * the names of the VMs that were running or paused.
     */
    List<String> fenceAll(String reason) {
        List<String> killed = new ArrayList<>();
        fenceLock.writeLock().lock();
        try {
            for (ManagedVm m : vms.values()) {
                VmInstance i = m.instanceUnlocked();
                if (i != null) {
                    i.close();
                    killed.add(m.name);
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
                if (m.instance() != null && !killed.contains(m.name)) {
                    killed.add(m.name);
                }
                closeInstance(m);
                if (m.state() != VmState.VM_STATE_STOPPED) {
                    m.state(VmState.VM_STATE_FAILED, reason);
                }
            }
        }
        killed.sort(null);
        return killed;
    }
}
