package dev.ferry.agent;

import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * One agent's settings.
 *
 * <p>What bounds an incoming migration whose source went away without a word (a blackholed link,
 * a frozen or powered-off host), so that the destination lets go of the VM's RAM file, its
 * hypervisor process and the reserved name: {@code incomingTimeout} until every lane said hello,
 * then {@code idleTimeout} of silence on all lanes, and the transport's keepalive (see
 * {@link Transport.Keepalive}) for a peer whose connection died; docs/ARCHITECTURE.md, "Deadlines",
 * says which wait each one bounds.
 *
 * @param hostId this host's name in the cluster
 * @param listen where the control API and the migration stream are served
 * @param dataDir per-VM run directories (logs, sockets)
 * @param ramDir guest RAM files; must be tmpfs so the hypervisor and the agent can share them
 * @param endpointFile if set, the bound endpoint is written there once serving (for port 0)
 * @param transport builds the server and channels, with their keepalive settings
 * @param timeouts migration timeouts, already scaled
 * @param incomingTimeout the handshake deadline: a prepared migration is discarded unless every one
 *     of its lanes said hello within this of the prepare
 * @param idleTimeout the idle deadline: an incoming migration that gets no frame on any lane for
 *     this long while it waits for pages or device state is discarded
 * @param advertise the endpoint other hosts reach this agent at (registered in ZooKeeper, and given
 *     to migration sources as the stream endpoint); null: the bound endpoint. It differs from the
 *     bound one when the agent listens on a wildcard address (0.0.0.0:7070) or behind NAT
 * @param maxIncoming how many migrations this agent receives at once (prepared and not yet
 *     committed or discarded); a prepare beyond it is refused with RESOURCE_EXHAUSTED, so a
 *     flood of prepares (a bug, or a stolen coordinator key) cannot start unbounded hypervisors
 *     and RAM files on one host
 * @param metricsListen where the agent serves its Prometheus metrics ({@code GET /metrics}); null:
 *     nowhere (they are still counted, for a later endpoint or a test to read)
 * @param reportsKept how many finished outgoing migrations' records (`ferry report`) the agent keeps
 * @param reportRetention how long it keeps each of them
 */
public record AgentConfig(
        String hostId,
        Endpoint listen,
        Path dataDir,
        Path ramDir,
        Path endpointFile,
        Transport transport,
        PreCopySender.Timeouts timeouts,
        Duration incomingTimeout,
        Duration idleTimeout,
        Endpoint advertise,
        int maxIncoming,
        InetSocketAddress metricsListen,
        int reportsKept,
        Duration reportRetention) {
    private static final Pattern HOST_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,62}");

    /** Lanes to say hello after a prepare: the source's own handshake timeout (30 s) with room to spare. */
    public static final Duration DEFAULT_INCOMING_TIMEOUT = Duration.ofSeconds(60);

    /**
     * Silence on every lane of a migration that is still receiving. A healthy source sends all the
     * time (batches, round ends, device state); its longest quiet spells are between rounds and
     * while the hypervisor sets up its save, well under a second or a few on a busy host. A dead
     * connection is caught sooner by keepalive; this catches a source that is connected but no
     * longer sends. Note: a bandwidth cap so low that one window (1 MiB) takes longer than this would
     * trip it (below about 35 KB/s).
     */
    /** {@link #DEFAULT_IDLE_TIMEOUT} in milliseconds: the default of {@code ferry agent --incoming-idle-timeout-ms}. */
    public static final long DEFAULT_IDLE_TIMEOUT_MS = 30_000;

    public static final Duration DEFAULT_IDLE_TIMEOUT = Duration.ofMillis(DEFAULT_IDLE_TIMEOUT_MS);

    /**
     * Receiving at once: a drain with {@code --parallel 2} sends at most two per destination, and
     * a failover restarts without a prepare; four leaves room for two drains at a time.
     */
    public static final int DEFAULT_MAX_INCOMING = 4;

    public static final int DEFAULT_REPORTS_KEPT = 200;
    public static final Duration DEFAULT_REPORT_RETENTION = Duration.ofDays(30);

    public AgentConfig {
        // Records of migrations (MigrationRecords) checks the values; null: the defaults.
        if (reportRetention == null) {
            reportRetention = DEFAULT_REPORT_RETENTION;
        }
        if (reportsKept == 0) {
            reportsKept = DEFAULT_REPORTS_KEPT;
        }
        if (reportsKept < 1 || !reportRetention.isPositive()) {
            throw new IllegalArgumentException(
                    "the migration records kept must be at least 1 and kept a positive time");
        }
        if (maxIncoming < 1) {
            throw new IllegalArgumentException("max incoming migrations must be at least 1, got " + maxIncoming);
        }
        Objects.requireNonNull(listen, "listen");
        Objects.requireNonNull(dataDir, "dataDir");
        Objects.requireNonNull(ramDir, "ramDir");
        Objects.requireNonNull(transport, "transport");
        Objects.requireNonNull(timeouts, "timeouts");
        Objects.requireNonNull(incomingTimeout, "incomingTimeout");
        Objects.requireNonNull(idleTimeout, "idleTimeout");
        if (hostId == null || !HOST_ID.matcher(hostId).matches()) {
            throw new IllegalArgumentException(
                    "host id must be 1-63 letters, digits, '.', '_' or '-', got '" + hostId + "'");
        }
        if (!incomingTimeout.isPositive() || !idleTimeout.isPositive()) {
            throw new IllegalArgumentException("the incoming and idle timeouts must be positive");
        }
    }

    /** Settings advertising the bound endpoint (the form before --advertise existed). */
    public AgentConfig(
            String hostId,
            Endpoint listen,
            Path dataDir,
            Path ramDir,
            Path endpointFile,
            Transport transport,
            PreCopySender.Timeouts timeouts,
            Duration incomingTimeout,
            Duration idleTimeout) {
        this(
                hostId,
                listen,
                dataDir,
                ramDir,
                endpointFile,
                transport,
                timeouts,
                incomingTimeout,
                idleTimeout,
                null,
                DEFAULT_MAX_INCOMING,
                null,
                DEFAULT_REPORTS_KEPT,
                DEFAULT_REPORT_RETENTION);
    }

    /** Settings with the default idle deadline (the form before it existed, kept for callers that build one). */
    public AgentConfig(
            String hostId,
            Endpoint listen,
            Path dataDir,
            Path ramDir,
            Path endpointFile,
            Transport transport,
            PreCopySender.Timeouts timeouts,
            Duration incomingTimeout) {
        this(
                hostId,
                listen,
                dataDir,
                ramDir,
                endpointFile,
                transport,
                timeouts,
                incomingTimeout,
                DEFAULT_IDLE_TIMEOUT,
                null,
                DEFAULT_MAX_INCOMING,
                null,
                DEFAULT_REPORTS_KEPT,
                DEFAULT_REPORT_RETENTION);
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
                DEFAULT_INCOMING_TIMEOUT,
                DEFAULT_IDLE_TIMEOUT,
                null,
                DEFAULT_MAX_INCOMING,
                null,
                DEFAULT_REPORTS_KEPT,
                DEFAULT_REPORT_RETENTION);
    }

    public AgentConfig withRamDir(Path dir) {
        return with(b -> b.ramDir = dir);
    }

    public AgentConfig withEndpointFile(Path file) {
        return with(b -> b.endpointFile = file);
    }

    public AgentConfig withTimeouts(PreCopySender.Timeouts t, Duration incoming) {
        return with(b -> {
            b.timeouts = t;
            b.incomingTimeout = incoming;
        });
    }

    public AgentConfig withIdleTimeout(Duration idle) {
        return with(b -> b.idleTimeout = idle);
    }

    /** The transport of this agent's server and of every channel it opens (mutual TLS or plaintext). */
    public AgentConfig withTransport(Transport t) {
        return with(b -> b.transport = t.withKeepalive(transport.keepalive()));
    }

    /** HTTP/2 keepalive of this agent's server and of the channels it opens (migration lanes included). */
    public AgentConfig withKeepalive(Transport.Keepalive keepalive) {
        return with(b -> b.transport = transport.withKeepalive(keepalive));
    }

    /** The endpoint to register and give to migration sources instead of the bound one (null: the bound one). */
    public AgentConfig withAdvertise(Endpoint endpoint) {
        return with(b -> b.advertise = endpoint);
    }

    /** At most {@code n} migrations received at once (see {@code maxIncoming}). */
    public AgentConfig withMaxIncoming(int n) {
        return with(b -> b.maxIncoming = n);
    }

    /** Serve the agent's metrics on {@code at} (port 0 picks one); null: not at all. */
    public AgentConfig withMetricsListen(InetSocketAddress at) {
        return with(b -> b.metricsListen = at);
    }

    /** Keep the records of the last {@code count} finished outgoing migrations, each for {@code age}. */
    public AgentConfig withReports(int count, Duration age) {
        return with(b -> {
            b.reportsKept = count;
            b.reportRetention = age;
        });
    }

    /**
     * These settings with {@code change} applied: one place copies every component, so that a
     * setting added later cannot be dropped by a {@code with} method that forgot it.
     */
    private AgentConfig with(java.util.function.Consumer<Copy> change) {
        Copy b = new Copy(this);
        change.accept(b);
        return b.build();
    }

    /** A mutable copy of every component, for {@link #with}. */
    private static final class Copy {
        String hostId;
        Endpoint listen;
        Path dataDir;
        Path ramDir;
        Path endpointFile;
        Transport transport;
        PreCopySender.Timeouts timeouts;
        Duration incomingTimeout;
        Duration idleTimeout;
        Endpoint advertise;
        int maxIncoming;
        InetSocketAddress metricsListen;
        int reportsKept;
        Duration reportRetention;

        Copy(AgentConfig c) {
            hostId = c.hostId;
            listen = c.listen;
            dataDir = c.dataDir;
            ramDir = c.ramDir;
            endpointFile = c.endpointFile;
            transport = c.transport;
            timeouts = c.timeouts;
            incomingTimeout = c.incomingTimeout;
            idleTimeout = c.idleTimeout;
            advertise = c.advertise;
            maxIncoming = c.maxIncoming;
            metricsListen = c.metricsListen;
            reportsKept = c.reportsKept;
            reportRetention = c.reportRetention;
        }

        AgentConfig build() {
            return new AgentConfig(
                    hostId,
                    listen,
                    dataDir,
                    ramDir,
                    endpointFile,
                    transport,
                    timeouts,
                    incomingTimeout,
                    idleTimeout,
                    advertise,
                    maxIncoming,
                    metricsListen,
                    reportsKept,
                    reportRetention);
        }
    }
}
