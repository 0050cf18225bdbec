package dev.ferry.cli.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Samples a process's memory from /proc/PID/status while a benchmark runs. RssAnon (heap, direct
 * buffers, native) is what a migration costs; guest RAM itself shows as RssShmem and is reported apart.
 */
final class ProcessMemory implements AutoCloseable {
    private final long pid;
    private final ScheduledExecutorService sampler = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().daemon().name("rss-sampler").factory());
    private volatile long peakAnon;
    private volatile long peakShmem;
    private volatile long peakRss;

    ProcessMemory(long pid) {
        this.pid = pid;
        sampler.scheduleAtFixedRate(this::sample, 0, 20, TimeUnit.MILLISECONDS);
    }

    private void sample() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc", Long.toString(pid), "status"))) {
                if (line.startsWith("RssAnon:")) {
                    peakAnon = Math.max(peakAnon, kib(line));
                } else if (line.startsWith("RssShmem:")) {
                    peakShmem = Math.max(peakShmem, kib(line));
                } else if (line.startsWith("VmRSS:")) {
                    peakRss = Math.max(peakRss, kib(line));
                }
            }
        } catch (IOException | RuntimeException e) {
            // the process ended; keep what was seen
        }
    }

    private static long kib(String line) {
        String[] parts = line.trim().split("\\s+");
        return Long.parseLong(parts[1]) * 1024;
    }

    long peakAnonBytes() {
        return peakAnon;
    }

    long peakShmemBytes() {
        return peakShmem;
    }

    long peakRssBytes() {
        return peakRss;
    }

    @Override
    public void close() {
        sample();
        sampler.shutdownNow();
    }
}
