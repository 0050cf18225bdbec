package dev.ferry.cli;

import dev.ferry.cli.bench.TransferBench;
import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "bench", description = {"Measure migration throughput against raw TCP, and the agents' memory.",
    "Starts its own local cluster; results go to stdout (and --json)."},
    subcommands = {BenchCommand.RawSink.class, QemuBenchCommand.class})
final class BenchCommand implements java.util.concurrent.Callable<Integer> {
  @Option(names = "--size", defaultValue = "1G", description = "Guest RAM per throughput run (default: ${DEFAULT-VALUE}).")
  String size;

  @Option(names = "--patterns", split = ",", defaultValue = "random,compressible,sparse",
      description = "Memory contents to measure (default: ${DEFAULT-VALUE}).")
  List<String> patterns;

  @Option(names = "--streams", split = ",", defaultValue = "1,2", description = "Stream counts (default: ${DEFAULT-VALUE}).")
  List<Integer> streams;

  @Option(names = "--repeat", defaultValue = "3", description = "Runs per case; the median is reported (default: ${DEFAULT-VALUE}).")
  int repeat;

  @Option(names = "--memory-size", defaultValue = "4G",
      description = "Guest RAM of the memory-bound run (0 skips it) (default: ${DEFAULT-VALUE}).")
  String memorySize;

  @Option(names = "--json", description = "Print the results as JSON.")
  boolean json;

  @Override
  public Integer call() throws Exception {
    TransferBench.Settings s = new TransferBench.Settings(Sizes.parseSize(size),
        patterns.stream().map(VmCommand.Create::pattern).toList(), streams, Math.max(1, repeat),
        Sizes.parseSize(memorySize));
    TransferBench.Report r = new TransferBench(s, json ? System.err : System.out).run();
    if (json) {
      System.out.println(Json.write(r.toJson()));
    } else {
      System.out.println();
      System.out.println(r.table());
    }
    return 0;
  }

  @Command(name = "raw-sink", hidden = true, description = "Raw TCP receiver of the benchmark's baseline.")
  static final class RawSink implements java.util.concurrent.Callable<Integer> {
    @Option(names = "--ram-dir", required = true)
    Path ramDir;

    @Option(names = "--endpoint-file", required = true)
    Path endpointFile;

    @Override
    public Integer call() throws Exception {
      TransferBench.serveRawSink(ramDir, endpointFile);
      return 0;
    }
  }
}
