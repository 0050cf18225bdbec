package dev.ferry.testkit.netns;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;

/**
 * An agent of a {@link NetnsCluster}: a {@link Daemon} plus where it keeps its files and, when
 * started under libfaketime, the knob for its wall clock.
 */
public final class AgentDaemon extends Daemon {
    /** Debian's libfaketime (package faketime). */
    public static final Path LIBFAKETIME = Path.of("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1");

    private final AgentSpec spec;
    private final Path dataDir;
    private final Path ramDir;
    private final Path endpointFile;
    private final Path clockFile;

    AgentDaemon(
            AgentSpec spec,
            NetnsHost host,
            List<String> command,
            Map<String, String> environment,
            Path logFile,
            Path dataDir,
            Path ramDir,
            Path endpointFile,
            Path clockFile,
            Predicate<Daemon> ready,
            Runnable beforeStart) {
        super(spec.hostId(), Role.AGENT, host, command, environment, logFile, ready, beforeStart);
        this.spec = spec;
        this.dataDir = dataDir;
        this.ramDir = ramDir;
        this.endpointFile = endpointFile;
        this.clockFile = clockFile;
    }

    public AgentSpec spec() {
        return spec;
    }

    public String hostId() {
        return spec.hostId();
    }

    /** {@code --data-dir}: the agent's per-VM run directories (QEMU's logs, sockets, pid and lease files). */
    public Path dataDir() {
        return dataDir;
    }

    /** {@code --ram-dir}: guest RAM files (a tmpfs of its own with {@link AgentSpec#withRamTmpfs}). */
    public Path ramDir() {
        return ramDir;
    }

    /** The HOST:PORT the agent serves on and registered in ZooKeeper. */
    public String endpoint() {
        return host().address() + ":" + NetnsCluster.AGENT_PORT;
    }

    /** The file the agent writes its endpoint to once it has joined the cluster (deleted before each start). */
    Path endpointFile() {
        return endpointFile;
    }

    /**
     * Moves this agent's wall clock (CLOCK_REALTIME as libfaketime fakes it) {@code offset} away
     * from the machine's, forward or back; the agent reads the change within a second. Its monotonic
     * clock is left alone, as a real clock step leaves it. Only for agents started
     * {@link AgentSpec#withFaketime()}.
     */
    public void setClockOffset(Duration offset) {
        if (clockFile == null) {
            throw new IllegalStateException(hostId() + " was not started with faketime (AgentSpec.withFaketime())");
        }
        writeClock(clockFile, offset);
    }

    static void writeClock(Path clockFile, Duration offset) {
        long s = offset.toSeconds();
        // libfaketime reads "+N"/"-N" as an offset in seconds; replaced atomically so that it never reads half a line.
        String text = (s >= 0 ? "+" : "") + s + "\n";
        try {
            Path tmp = clockFile.resolveSibling(clockFile.getFileName() + ".tmp");
            Files.writeString(tmp, text, StandardCharsets.US_ASCII);
            Files.move(tmp, clockFile, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
