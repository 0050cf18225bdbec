package dev.ferry.cli.cluster;

import com.fasterxml.jackson.annotation.JsonIgnoreProperties;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.ferry.cli.CliException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * DIR/cluster.json: what `ferry cluster up` started, so that every other command (and `cluster
 * down`) finds the agents: their endpoints, process ids and directories.
 */
@JsonIgnoreProperties(ignoreUnknown = false)
public record ClusterFile(int version, String driver, String createdAt, List<Host> hosts) {
  public static final int VERSION = 1;
  public static final String NAME = "cluster.json";
  private static final ObjectMapper MAPPER = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  public record Host(String id, String endpoint, long pid, String dataDir, String ramDir, String log) {}

  public Host host(String id) {
    for (Host h : hosts) {
      if (h.id().equals(id)) {
        return h;
      }
    }
    throw new CliException("no host '" + id + "' in this cluster (hosts: "
        + String.join(", ", hosts.stream().map(Host::id).toList()) + ")");
  }

  public static ClusterFile read(Path dir) {
    Path file = dir.resolve(NAME);
    try {
      ClusterFile f = MAPPER.readValue(Files.readAllBytes(file), ClusterFile.class);
      if (f.version() != VERSION) {
        throw new CliException(file + " has version " + f.version() + "; this ferry reads version " + VERSION);
      }
      return f;
    } catch (NoSuchFileException e) {
      throw new CliException("no cluster at " + dir + " (no " + NAME + "); start one with 'ferry cluster up --dir " + dir + "'");
    } catch (IOException e) {
      throw new CliException("cannot read " + file + ": " + e.getMessage());
    }
  }

  public void write(Path dir) {
    Path file = dir.resolve(NAME);
    Path tmp = dir.resolve(NAME + ".tmp");
    try {
      Files.write(tmp, MAPPER.writeValueAsBytes(this));
      Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    } catch (IOException e) {
      throw new CliException("cannot write " + file + ": " + e.getMessage());
    }
  }
}
