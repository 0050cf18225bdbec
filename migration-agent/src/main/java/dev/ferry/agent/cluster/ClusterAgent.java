package dev.ferry.agent.cluster;

import dev.ferry.agent.Agent;
import dev.ferry.agent.AgentConfig;
import dev.ferry.cluster.store.Records;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.hypervisor.HypervisorDriver;
import dev.ferry.proto.agent.AgentInfo;
import dev.ferry.proto.cluster.HostRecord;
import java.io.Closeable;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

/**
 * An agent that is a member of a cluster: the {@link Agent} daemon with the cluster's run locks
 * and commit injected, registered in ZooKeeper by a {@link ClusterMember} that fences it when its
 * session is lost.
 */
public final class ClusterAgent implements Closeable {
    /**
     * What the host offers the cluster.
     *
     * @param memoryBytes memory for VMs
     * @param vcpus vCPUs for VMs (may exceed the cores: overcommit)
     */
    public record Capacity(long memoryBytes, int vcpus, Map<String, String> labels) {
        public Capacity {
            if (memoryBytes <= 0 || vcpus <= 0) {
                throw new IllegalArgumentException("host capacity must be positive");
            }
            labels = Map.copyOf(labels);
        }

        /** This machine: its memory (MemTotal) and four vCPUs per core. */
        public static Capacity ofThisMachine() {
            return new Capacity(memTotal(), Runtime.getRuntime().availableProcessors() * 4, Map.of());
        }

        static long memTotal() {
            try {
                for (String line : Files.readAllLines(Path.of("/proc/meminfo"))) {
                    if (line.startsWith("MemTotal:")) {
                        return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
                    }
                }
            } catch (IOException | NumberFormatException e) {
                // fall through
            }
            return Runtime.getRuntime().maxMemory();
        }
    }

    private final Agent agent;
    private final ClusterMember member;

    private ClusterAgent(Agent agent, ClusterMember member) {
        this.agent = agent;
        this.member = member;
    }

    /** How long an agent keeps its guests running through a ZooKeeper outage that every coordinator confirms. */
    public static final Duration DEFAULT_OUTAGE_HOLD = Duration.ofMinutes(2);

    /** Starts the agent, then joins the cluster (registration completes in the background). */
    public static ClusterAgent start(
            AgentConfig config, HypervisorDriver driver, ZkClients zk, Capacity capacity, Duration auditInterval)
            throws IOException {
        return start(config, driver, zk, capacity, auditInterval, DEFAULT_OUTAGE_HOLD);
    }

    /**
     * @param outageHold the longest the agent keeps its guests running, after losing ZooKeeper, on
     *     the coordinators' word that they cannot reach it either (zero: never)
     */
    public static ClusterAgent start(
            AgentConfig config,
            HypervisorDriver driver,
            ZkClients zk,
            Capacity capacity,
            Duration auditInterval,
            Duration outageHold)
            throws IOException {
        java.nio.file.Files.createDirectories(config.dataDir());
        ClusterMember member = new ClusterMember(
                zk,
                config.hostId(),
                auditInterval,
                new ClusterMember.Options(
                        config.dataDir().resolve(ClusterMember.SESSION_FILE),
                        outageHold.isZero() ? null : new OutageWitnesses(config.hostId(), config.transport()),
                        outageHold));
        Agent agent = new Agent(config, driver, member.commits(), member.ownership());
        agent.metrics()
                .cluster(
                        () -> stateName(member.state()),
                        java.util.Arrays.stream(ClusterMember.State.values())
                                .map(ClusterAgent::stateName)
                                .toList(),
                        member::fences);
        try {
            agent.start();
        } catch (IOException | RuntimeException e) {
            agent.close();
            member.close();
            throw e;
        }
        // Once, before the host registers: what its hypervisor runs does not change while it lives.
        dev.ferry.hypervisor.HypervisorProfile hypervisor;
        try {
            hypervisor = driver.profile();
        } catch (dev.ferry.hypervisor.HypervisorException e) {
            agent.close();
            member.close();
            throw new IOException("cannot tell what this host's hypervisor runs: " + e.getMessage(), e);
        }
        member.start(new ClusterMember.Host() {
            @Override
            public HostRecord describe() {
                AgentInfo info = agent.describe();
                HostRecord.Builder b = HostRecord.newBuilder()
                        .setSchemaVersion(Records.SCHEMA_VERSION)
                        .setHostId(config.hostId())
                        .setEndpoint(agent.endpoint().toString())
                        .setMemoryBytes(capacity.memoryBytes())
                        .setVcpus(capacity.vcpus())
                        .putAllLabels(capacity.labels())
                        .setDriver(info.getDriver())
                        .setAgentVersion(info.getVersion())
                        .setPid(info.getPid())
                        .setPrecopy(info.getDirtyTracking().startsWith("available"))
                        .setDirtyTracking(info.getDirtyTracking())
                        .setQemuVersion(hypervisor.version())
                        .addAllMachineTypes(hypervisor.machineTypes())
                        .setAccelerator(hypervisor.accelerator())
                        .addAllCpuModels(hypervisor.cpuModels())
                        .putAllMachineAliases(hypervisor.machineAliases())
                        // Read at each registration (a bridge added later counts after the agent's
                        // next session or restart); whatever the driver, placement checks them.
                        .addAllBridges(dev.ferry.hypervisor.net.Taps.bridges());
                // What this agent presents until it restarts, for `cluster status` to warn about.
                config.transport()
                        .expiry()
                        .ifPresent(e -> b.setCertificateNotAfterMs(e.notAfter().toEpochMilli())
                                .setCaNotAfterMs(e.caNotAfter().toEpochMilli()));
                return b.build();
            }

            @Override
            public List<String> fence(String reason) {
                return agent.fence(reason);
            }

            @Override
            public Map<String, String> reclaim() {
                return agent.reclaim();
            }

            @Override
            public boolean anyFenced() {
                return agent.anyFenced();
            }

            @Override
            public boolean holds(String vm) {
                return agent.holds(vm);
            }
        });
        return new ClusterAgent(agent, member);
    }

    private static String stateName(ClusterMember.State s) {
        return s.name().toLowerCase(java.util.Locale.ROOT);
    }

    public Agent agent() {
        return agent;
    }

    public ClusterMember member() {
        return member;
    }

    /** Stops the VMs (releasing their run locks), then leaves the cluster. */
    @Override
    public void close() {
        agent.close();
        member.close();
    }

    /**
     * Exits for a restart (an upgrade): guests that run outside the agent keep running, and the
     * ZooKeeper session stays open with their run locks, for the next agent process on this host
     * (same host id and data directory) to resume within the session timeout. Returns the VMs left
     * running.
     */
    public List<String> closeLeavingGuests() {
        List<String> left = agent.closeLeavingGuests();
        member.abandon();
        return left;
    }
}
