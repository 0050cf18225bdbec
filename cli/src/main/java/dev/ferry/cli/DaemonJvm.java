package dev.ferry.cli;

import java.util.List;

/**
 * JVM options of Ferry's daemons, in one place for every way they start: `ferry cluster up`
 * spawns them with these, and the `ferry` launcher asks this class for them (it runs
 * {@code java -cp ferry.jar dev.ferry.cli.DaemonJvm agent}) before it starts `ferry agent` or
 * `ferry coordinator`, so an agent an operator starts by hand is bounded the same way.
 */
public final class DaemonJvm {
    /**
     * The agent's. A bounded heap with a small young generation: page batches are short-lived
     * 1 MiB arrays, and a 64 MiB young generation collects them as often as they come (cheaply,
     * they are dead) instead of growing towards a third of the heap, which kept agents at about
     * 520 MiB resident after their first migration and at 230-290 MiB with it (docs/BENCHMARKS.md).
     * A collection inside a switchover's pause is downtime, so the first 128 MiB of heap are touched
     * at start-up (first touch of memory is slow on VMs whose host backs memory lazily, and made the
     * first young collections take 40-60 ms), and the metaspace starts large enough that class
     * loading does not force full collections during the first migrations.
     */
    public static final List<String> AGENT = List.of(
            "--enable-native-access=ALL-UNNAMED",
            // ZooKeeper's unshaded Netty uses sun.misc.Unsafe: no JDK 25 warning in every daemon log.
            "--sun-misc-unsafe-memory-access=allow",
            "-XX:+UseParallelGC",
            "-Xms128m",
            "-Xmn64m",
            "-XX:+AlwaysPreTouch",
            "-XX:MetaspaceSize=96m",
            "-Xmx1g",
            "-XX:MaxDirectMemorySize=512m",
            "-XX:+ExitOnOutOfMemoryError");

    /** The coordinator's (it holds the cluster's records in memory: the embedded server and the caches). */
    public static final List<String> COORDINATOR = List.of(
            "--enable-native-access=ALL-UNNAMED",
            // ZooKeeper's unshaded Netty uses sun.misc.Unsafe: no JDK 25 warning in every daemon log.
            "--sun-misc-unsafe-memory-access=allow",
            "-XX:+UseParallelGC",
            "-Xms64m",
            "-Xmx1g",
            "-XX:+ExitOnOutOfMemoryError");

    private DaemonJvm() {}

    /** Prints the options of the daemon named by the argument, one per line. */
    public static void main(String[] args) {
        if (args.length != 1 || !(args[0].equals("agent") || args[0].equals("coordinator"))) {
            System.err.println("usage: DaemonJvm agent|coordinator");
            System.exit(2);
        }
        (args[0].equals("agent") ? AGENT : COORDINATOR).forEach(System.out::println);
    }
}
