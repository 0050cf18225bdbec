package dev.ferry.agent;

import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * One agent's settings.
 *
 * @param hostId this host's name in the cluster
 * @param listen where the control API and the migration stream are served
 * @param dataDir per-VM run directories (logs, sockets)
 * @param ramDir guest RAM files; must be tmpfs so the hypervisor and the agent can share them
 * @param endpointFile if set, the bound endpoint is written there once serving (for port 0)
 * @param timeouts migration timeouts, already scaled
 * @param incomingTimeout how long a prepared migration waits for its lanes
 */
public record AgentConfig(
        String hostId,
        Endpoint listen,
        Path dataDir,
        Path ramDir,
        Path endpointFile,
        Transport transport,
        PreCopySender.Timeouts timeouts,
        Duration incomingTimeout) {
    private static final Pattern HOST_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,62}");

    public AgentConfig {
        Objects.requireNonNull(listen, "listen");
        Objects.requireNonNull(dataDir, "dataDir");
        Objects.requireNonNull(ramDir, "ramDir");
        Objects.requireNonNull(transport, "transport");
        Objects.requireNonNull(timeouts, "timeouts");
        Objects.requireNonNull(incomingTimeout, "incomingTimeout");
        if (hostId == null || !HOST_ID.matcher(hostId).matches()) {
            throw new IllegalArgumentException(
                    "host id must be 1-63 letters, digits, '.', '_' or '-', got '" + hostId + "'");
        }
    }

    /** Defaults for a host: RAM files under /dev/shm/ferry/HOST. */
    public static AgentConfig of(String hostId, Endpoint listen, Path dataDir) {
        return new AgentConfig(
                hostId,
                listen,
                dataDir,
                Path.of("/dev/shm/ferry", hostId),
                null,
                Transport.plaintext(),
                PreCopySender.Timeouts.defaults(),
                Duration.ofSeconds(60));
    }

    public AgentConfig withRamDir(Path dir) {
        return new AgentConfig(hostId, listen, dataDir, dir, endpointFile, transport, timeouts, incomingTimeout);
    }

    public AgentConfig withEndpointFile(Path file) {
        return new AgentConfig(hostId, listen, dataDir, ramDir, file, transport, timeouts, incomingTimeout);
    }

    public AgentConfig withTimeouts(PreCopySender.Timeouts t, Duration incoming) {
        return new AgentConfig(hostId, listen, dataDir, ramDir, endpointFile, transport, t, incoming);
    }
}
