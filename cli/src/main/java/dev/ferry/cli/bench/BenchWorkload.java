package dev.ferry.cli.bench;

import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.Workload;
import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The guest loads of `ferry bench qemu`: the Ferry test guest writing random (incompressible)
 * pages at a fixed rate over a working set.
 */
enum BenchWorkload {
    IDLE("idle", 0, 0, "no page writes (heartbeat only)"),
    WS32M("ws32m", 32L << 20, 2048, "32 MiB working set, 2048 pages/s (8 MiB/s)"),
    WS256M("ws256m", 256L << 20, 8192, "256 MiB working set, 8192 pages/s (32 MiB/s)"),
    /**
     * 40k random page writes per second (160 MiB/s) over 768 MiB, against a bandwidth cap of both
     * sides well below that ({@code --nonconverging-cap}, default 50 MiB/s: the guest gets less than
     * a core on a busy 2-core machine), so that it cannot converge by construction. Not faster: the TCG guest manages 50-100k writes/s with a core to itself, and
     * a saturated guest prints its heartbeat only every few seconds. Not the whole of a 1 GiB guest:
     * its top megabytes hold firmware leftovers that the guest's self-check reports as stale with or
     * without a migration.
     */
    NONCONVERGING("nonconverging", 768L << 20, 40_000, "768 MiB working set, 40k pages/s (160 MiB/s)");

    final String id;
    final long workingSetBytes;
    final long pagesPerSecond;
    final String description;

    BenchWorkload(String id, long workingSetBytes, long pagesPerSecond, String description) {
        this.id = id;
        this.workingSetBytes = workingSetBytes;
        this.pagesPerSecond = pagesPerSecond;
        this.description = description;
    }

    static BenchWorkload parse(String s) {
        String want = s.trim().toLowerCase(Locale.ROOT);
        for (BenchWorkload w : values()) {
            if (w.id.equals(want)) {
                return w;
            }
        }
        throw new IllegalArgumentException("unknown workload '" + s + "': use "
                + Arrays.stream(values()).map(w -> w.id).collect(Collectors.joining(", ")));
    }

    /** The VM: one vCPU, the test guest with this load (the QEMU driver turns it into the guest's command line). */
    VmSpec spec(String name, long memoryBytes) {
        return VmSpec.newBuilder()
                .setSchemaVersion(1)
                .setName(name)
                .setMemoryBytes(memoryBytes)
                .setVcpus(1)
                .setWorkload(Workload.newBuilder()
                        .setPattern(Pattern.PATTERN_RANDOM)
                        .setDirtyRatePagesPerSec(pagesPerSecond)
                        .setWorkingSetBytes(workingSetBytes))
                .build();
    }
}
