package dev.ferry.cli;

import dev.ferry.cli.cluster.ClusterFile;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** --cluster DIR, defaulting to $FERRY_CLUSTER. */
public final class ClusterOption {
  @Option(names = "--cluster", paramLabel = "DIR", description = "Cluster directory (default: $FERRY_CLUSTER).")
  Path cluster;

  Path dir() {
    if (cluster != null) {
      return cluster;
    }
    String env = System.getenv("FERRY_CLUSTER");
    if (env == null || env.isBlank()) {
      throw new CliException("which cluster? pass --cluster DIR or set FERRY_CLUSTER", 2);
    }
    return Path.of(env);
  }

  ClusterFile load() {
    return ClusterFile.read(dir());
  }
}
