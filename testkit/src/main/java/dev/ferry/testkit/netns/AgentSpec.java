package dev.ferry.testkit.netns;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * How a {@link NetnsCluster} starts one agent: its host id, driver, what it offers, and the
 * conditions the chaos suite needs set up before the process starts (a small tmpfs under its RAM
 * files, a fake wall clock). Immutable; the {@code with*} methods return changed copies.
 *
 * @param hostId the agent's {@code --host-id} (also the host's name in the kit)
 * @param driver {@code sim} or {@code qemu}
 * @param memory {@code --memory} (a size, 4G)
 * @param vcpus {@code --vcpus}
 * @param ramTmpfsBytes when positive, the kit mounts a tmpfs of this size at the agent's RAM
 *     directory before it starts, so that a nemesis can fill it; 0 leaves the RAM directory on the
 *     cluster's own tmpfs
 * @param faketime start the agent under libfaketime with a wall-clock offset the test can change
 *     ({@link AgentDaemon#setClockOffset})
 * @param extraArgs more {@code ferry agent} arguments ({@code --label rack=a}, {@code --outage-hold-ms 0})
 * @param wildcardListen listen on {@code 0.0.0.0:7070} and {@code --advertise} the host's address
 *     (as the README's production example); otherwise {@code --listen ADDR:7070}
 */
public record AgentSpec(
        String hostId,
        String driver,
        String memory,
        int vcpus,
        long ramTmpfsBytes,
        boolean faketime,
        List<String> extraArgs,
        boolean wildcardListen) {
    private static final Pattern HOST_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,62}");

    public AgentSpec {
        Objects.requireNonNull(hostId, "hostId");
        if (!HOST_ID.matcher(hostId).matches()) {
            throw new IllegalArgumentException("host id '" + hostId + "' must be letters, digits, '.', '_' or '-'");
        }
        if (!driver.equals("sim") && !driver.equals("qemu")) {
            throw new IllegalArgumentException("driver must be sim or qemu, got '" + driver + "'");
        }
        if (vcpus < 1) {
            throw new IllegalArgumentException("vcpus must be at least 1");
        }
        if (ramTmpfsBytes < 0) {
            throw new IllegalArgumentException("ramTmpfsBytes must not be negative");
        }
        extraArgs = List.copyOf(extraArgs);
    }

    /** A sim-driver agent offering 4 GiB and 16 vCPUs. */
    public static AgentSpec sim(String hostId) {
        return new AgentSpec(hostId, "sim", "4G", 16, 0, false, List.of(), false);
    }

    /** A qemu-driver agent (guests run the Ferry test guest unless told otherwise) offering 4 GiB and 16 vCPUs. */
    public static AgentSpec qemu(String hostId) {
        return new AgentSpec(hostId, "qemu", "4G", 16, 0, false, List.of(), false);
    }

    public AgentSpec withCapacity(String memory, int vcpus) {
        return new AgentSpec(hostId, driver, memory, vcpus, ramTmpfsBytes, faketime, extraArgs, wildcardListen);
    }

    /** The RAM directory becomes a tmpfs of {@code bytes} (a full destination tmpfs is a nemesis). */
    public AgentSpec withRamTmpfs(long bytes) {
        if (bytes <= 0) {
            throw new IllegalArgumentException("a tmpfs needs a positive size");
        }
        return new AgentSpec(hostId, driver, memory, vcpus, bytes, faketime, extraArgs, wildcardListen);
    }

    /** The agent's JVM runs under libfaketime (wall clock only; see {@link AgentDaemon#setClockOffset}). */
    public AgentSpec withFaketime() {
        return new AgentSpec(hostId, driver, memory, vcpus, ramTmpfsBytes, true, extraArgs, wildcardListen);
    }

    public AgentSpec withArgs(String... args) {
        List<String> all = new ArrayList<>(extraArgs);
        all.addAll(List.of(args));
        return new AgentSpec(hostId, driver, memory, vcpus, ramTmpfsBytes, faketime, all, wildcardListen);
    }

    /** {@code --listen 0.0.0.0:7070 --advertise ADDR:7070} instead of {@code --listen ADDR:7070}. */
    public AgentSpec withWildcardListen() {
        return new AgentSpec(hostId, driver, memory, vcpus, ramTmpfsBytes, faketime, extraArgs, true);
    }
}
