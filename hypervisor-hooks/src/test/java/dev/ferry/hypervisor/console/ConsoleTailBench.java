package dev.ferry.hypervisor.console;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * What reading a console's tail costs a migration's pause (docs/BENCHMARKS.md, "Console history
 * at the switchover"): a full history (2 MiB, just below the trimming point) in a directory of the caller's choice, the tail a
 * migration carries ({@link ConsoleHistory#MAX_TAIL_BYTES}) read 200 times.
 *
 * <pre>java -cp hypervisor-hooks/target/classes:hypervisor-hooks/target/test-classes \
 *     dev.ferry.hypervisor.console.ConsoleTailBench [DIR]</pre>
 */
public final class ConsoleTailBench {
    private ConsoleTailBench() {}

    public static void main(String[] args) throws Exception {
        Path base = Files.createTempDirectory(Path.of(args.length > 0 ? args[0] : "/tmp"), "console-bench");
        try (ConsoleHistory h = ConsoleHistory.open(base)) {
            byte[] line = ("FERRY-GUEST hb=123456 gen=0 stale=0 " + "x".repeat(60) + "\n").getBytes();
            while (h.end() - h.start() < 2 * ConsoleHistory.DEFAULT_KEEP_BYTES - 2 * line.length) {
                h.append(line);
            }
            for (int i = 0; i < 50; i++) {
                h.tail(ConsoleHistory.MAX_TAIL_BYTES);
            }
            int n = 200;
            long t = System.nanoTime();
            int bytes = 0;
            for (int i = 0; i < n; i++) {
                bytes = h.tail(ConsoleHistory.MAX_TAIL_BYTES).data().length;
            }
            System.out.printf(
                    Locale.ROOT,
                    "%s: tail of %d bytes read in %.3f ms (mean of %d)%n",
                    base,
                    bytes,
                    (System.nanoTime() - t) / 1e6 / n,
                    n);
        } finally {
            try (var files = Files.list(base)) {
                for (Path f : files.toList()) {
                    Files.delete(f);
                }
            }
            Files.delete(base);
        }
    }
}
