package dev.ferry.chaos.nemesis;

import dev.ferry.chaos.history.History;
import dev.ferry.testkit.netns.AgentDaemon;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Fills an agent's RAM directory (a tmpfs of its own, {@code AgentSpec.withRamTmpfs}) with one
 * file allocated up to what is free, so that the next RAM file written there runs out of space.
 * Healing deletes the file.
 */
public final class DiskNemesis implements Nemesis {
    private final History history;
    private final List<Path> fillers = new ArrayList<>();

    public DiskNemesis(History history) {
        this.history = history;
    }

    @Override
    public String name() {
        return "disk";
    }

    /** Leaves at most {@code leaveBytes} free in the agent's RAM directory. */
    public synchronized void fill(AgentDaemon agent, long leaveBytes) {
        Path dir = agent.ramDir();
        Path f = dir.resolve("ch-filler-" + fillers.size());
        try {
            long free = Files.getFileStore(dir).getUsableSpace();
            long size = Math.max(0, free - leaveBytes);
            history.fault("disk", true, agent.hostId() + " RAM tmpfs filled, " + size + " of " + free + " free bytes");
            Process p = new ProcessBuilder("fallocate", "-l", Long.toString(size), f.toString())
                    .redirectErrorStream(true)
                    .start();
            if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
                p.destroyForcibly();
                throw new IllegalStateException(
                        "fallocate " + f + ": " + new String(p.getInputStream().readAllBytes()));
            }
            fillers.add(f);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    @Override
    public synchronized void heal() {
        if (fillers.isEmpty()) {
            return;
        }
        for (Path f : fillers) {
            try {
                Files.deleteIfExists(f);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        history.fault("disk", false, "fillers removed " + fillers);
        fillers.clear();
    }
}
