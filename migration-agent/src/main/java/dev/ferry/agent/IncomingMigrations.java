package dev.ferry.agent;

import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.VmInstance;
import dev.ferry.hypervisor.VmPaths;
import dev.ferry.hypervisor.storage.StorageRefusedException;
import dev.ferry.migration.commit.OwnershipCommit;
import dev.ferry.migration.receive.IncomingMigration;
import dev.ferry.migration.receive.MigrationStreamService;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.agent.PrepareIncomingResponse;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.rpc.Endpoint;
import io.grpc.Status;
import java.security.SecureRandom;
import java.util.HexFormat;
import java.util.concurrent.ScheduledExecutorService;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** The destination half of this agent: PrepareIncoming, and what happens when a migration ends. */
final class IncomingMigrations {
    private static final Logger log = LoggerFactory.getLogger(IncomingMigrations.class);
    private static final SecureRandom RANDOM = new SecureRandom();

    private final VmRegistry registry;
    private final MigrationStreamService streams;
    private final OwnershipCommit commit;
    private final ScheduledExecutorService timers;
    private final IncomingMigration.Deadlines deadlines;
    private final int maxIncoming;
    /** Prepared and not yet committed or discarded (guarded by this). */
    private int receiving;

    private volatile Endpoint streamEndpoint;
    private volatile boolean closed;

    IncomingMigrations(
            VmRegistry registry,
            MigrationStreamService streams,
            OwnershipCommit commit,
            ScheduledExecutorService timers,
            IncomingMigration.Deadlines deadlines,
            int maxIncoming) {
        this.maxIncoming = maxIncoming;
        this.registry = registry;
        this.streams = streams;
        this.commit = commit;
        this.timers = timers;
        this.deadlines = deadlines;
    }

    void streamEndpoint(Endpoint e) {
        this.streamEndpoint = e;
    }

    PrepareIncomingResponse prepare(PrepareIncomingRequest req) throws AgentException {
        if (req.getMigrationId().isBlank()) {
            throw new AgentException(Status.Code.INVALID_ARGUMENT, "prepare-incoming needs a migration id");
        }
        IncomingMigration existing = streams.find(req.getMigrationId());
        if (existing != null) {
            throw new AgentException(
                    Status.Code.ALREADY_EXISTS, "migration " + req.getMigrationId() + " is already prepared");
        }
        String name = req.getSpec().getName();
        TransferMode mode = req.getMode() == TransferMode.TRANSFER_MODE_INVALID
                ? TransferMode.TRANSFER_MODE_PRECOPY
                : req.getMode();
        HypervisorDriver driver = registry.driver();
        try {
            driver.validate(req.getSpec());
        } catch (HypervisorException e) {
            throw new AgentException(
                    Status.Code.INVALID_ARGUMENT, "this host cannot run VM '" + name + "': " + e.getMessage(), e);
        }
        if (mode == TransferMode.TRANSFER_MODE_HYPERVISOR_NATIVE
                && !driver.capabilities().hypervisorNativeMigration()) {
            throw new AgentException(
                    Status.Code.FAILED_PRECONDITION,
                    "the " + driver.name() + " driver on " + registry.hostId() + " has no hypervisor-native migration");
        }
        Slot slot = takeSlot(name, req.getMigrationId());
        try {
            registry.reserve(name, req.getMigrationId(), req.getEpoch());
        } catch (AgentException | RuntimeException e) {
            slot.release();
            throw e;
        }
        VmInstance vm;
        VmPaths paths = null;
        try {
            paths = registry.arrivalPaths(name);
            vm = driver.prepareIncoming(
                    req.getSpec(),
                    paths,
                    mode == TransferMode.TRANSFER_MODE_PRECOPY
                            ? HypervisorDriver.IncomingKind.PRECOPY
                            : HypervisorDriver.IncomingKind.HYPERVISOR_NATIVE);
        } catch (HypervisorException e) {
            abandonPrepare(name, req.getMigrationId(), paths, slot);
            throw new AgentException(
                    e.getCause() instanceof StorageRefusedException
                            ? Status.Code.INVALID_ARGUMENT
                            : Status.Code.INTERNAL,
                    "cannot prepare VM '" + name + "' on " + registry.hostId() + ": " + e.getMessage(),
                    e);
        } catch (AgentException | RuntimeException e) {
            abandonPrepare(name, req.getMigrationId(), paths, slot);
            throw e;
        }
        VmPaths arrived = paths;
        byte[] secret = new byte[16];
        RANDOM.nextBytes(secret);
        String token = HexFormat.of().formatHex(secret);
        IncomingMigration m = new IncomingMigration(
                new IncomingMigration.Expectation(
                        req.getMigrationId(),
                        registry.hostId(),
                        req.getSpec(),
                        req.getSourceHost(),
                        mode,
                        req.getEpoch()),
                token,
                vm,
                commit,
                new IncomingMigration.Listener() {
                    @Override
                    public void committed(IncomingMigration migration, long epoch) {
                        registry.adopt(migration.spec(), migration.vm(), epoch, migration.migrationId());
                        streams.forget(migration);
                        slot.release();
                    }

                    @Override
                    public void discarded(IncomingMigration migration, String reason) {
                        streams.forget(migration);
                        VmRegistry.deleteTree(arrived.runDir());
                        registry.unreserve(migration.spec().getName(), migration.migrationId());
                        slot.release();
                    }
                },
                deadlines);
        vm.onUnexpectedExit(m::hypervisorDied);
        synchronized (this) {
            if (!closed) {
                streams.expect(m);
            }
        }
        if (closed) {
            // The agent began shutting down while this VM was being prepared: nothing may outlive it.
            m.discard("agent shutting down", null);
            throw new AgentException(Status.Code.UNAVAILABLE, "agent " + registry.hostId() + " is shutting down");
        }
        // Until every lane said hello, then while pages arrive: a source gone silent is let go of.
        m.watch(timers);
        log.info("expecting {} from {} (migration {})", name, req.getSourceHost(), req.getMigrationId());
        return PrepareIncomingResponse.newBuilder()
                .setToken(token)
                .setStreamEndpoint(streamEndpoint.toString())
                .build();
    }

    /**
     * A prepare that failed (no room for the guest's RAM, a hypervisor that would not start)
     * leaves nothing: the name is free again and the run directory, with the lease written into
     * it first, goes. The chaos suite's full-tmpfs scenario found the directory left behind (I5).
     * The name was reserved for this migration and no VM of that name lives here, so the
     * directory is this prepare's alone.
     */
    private void abandonPrepare(String name, String migrationId, VmPaths paths, Slot slot) {
        slot.release();
        registry.unreserve(name, migrationId);
        if (paths != null) {
            VmRegistry.deleteTree(paths.runDir());
        }
    }

    /**
     * One of the {@code maxIncoming} places for a migration being received, taken at the prepare
     * and given back once, when it commits, is discarded, or the prepare fails.
     */
    private final class Slot {
        private boolean held = true;

        void release() {
            synchronized (IncomingMigrations.this) {
                if (held) {
                    held = false;
                    receiving--;
                }
            }
        }
    }

    private synchronized Slot takeSlot(String name, String migrationId) throws AgentException {
        if (receiving >= maxIncoming) {
            throw new AgentException(
                    Status.Code.RESOURCE_EXHAUSTED,
                    registry.hostId() + " already receives " + receiving + " migration(s), its limit (--max-incoming "
                            + maxIncoming + "); refusing VM '" + name + "' (migration " + migrationId
                            + "): retry when one has finished, or choose another host");
        }
        receiving++;
        return new Slot();
    }

    /** Migrations being received now (prepared, not yet committed or discarded). */
    synchronized int receiving() {
        return receiving;
    }

    void closeAll(String reason) {
        synchronized (this) {
            closed = true;
        }
        discardAll(reason);
    }

    /** Discards every incoming migration (a fence); new ones are still accepted afterwards. */
    void discardAll(String reason) {
        for (IncomingMigration m : streams.all()) {
            m.discard(reason, null);
        }
    }
}
