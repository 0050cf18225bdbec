package dev.ferry.cli.dist;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.hypervisor.qemu.QemuTestSupport;
import dev.ferry.testing.Timing;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The release tarball as an operator gets it (`ferry dist`): unpacked into an empty directory, run
 * with no JDK anywhere it could find one (JAVA_HOME unset, and the first {@code java} on the PATH
 * fails loudly), a coordinator and two agents started from config files the way the systemd units
 * start them, and a real QEMU guest migrated between the agents with certificates from the
 * tarball's own `ferry pki`.
 */
class DistIT {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path tmp;

    static Path home;
    static String version;
    static Map<String, String> env;
    static final List<Process> daemons = new ArrayList<>();

    @BeforeAll
    static void buildAndUnpack() throws Exception {
        Path repo = Path.of("..").toAbsolutePath().normalize();
        Path out = tmp.resolve("out");
        Map<String, String> buildEnv = new HashMap<>(System.getenv());
        buildEnv.put("JAVA_HOME", System.getProperty("java.home"));
        Result built = run(
                List.of(repo.resolve("scripts/dist.sh").toString(), "--out", out.toString()),
                buildEnv,
                Duration.ofMinutes(5));
        assertEquals(0, built.exit, built.err);
        Path tarball = Path.of(built.out.strip());
        String name = tarball.getFileName().toString();
        assertTrue(name.matches("ferry-.+-linux-x86_64\\.tar\\.gz"), name);
        version = name.substring("ferry-".length(), name.length() - "-linux-x86_64.tar.gz".length());

        Path unpacked = Files.createDirectory(tmp.resolve("unpacked"));
        Result tar = run(
                List.of("tar", "-C", unpacked.toString(), "-xzf", tarball.toString()), buildEnv, Duration.ofMinutes(2));
        assertEquals(0, tar.exit, tar.err);
        home = unpacked.resolve("ferry-" + version + "-linux-x86_64");

        Path fakeBin = Files.createDirectory(tmp.resolve("no-jdk-bin"));
        Path java = fakeBin.resolve("java");
        Files.writeString(java, "#!/bin/sh\necho 'a java from the PATH was run' >&2\nexit 99\n");
        java.toFile().setExecutable(true);
        env = new HashMap<>();
        env.put("PATH", fakeBin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        env.put("HOME", tmp.toString());
        env.put("LANG", "C.UTF-8");
    }

    @AfterAll
    static void stopDaemons() throws InterruptedException {
        for (Process p : daemons) {
            p.destroy();
        }
        for (Process p : daemons) {
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
            }
        }
        // The agents' RAM directories are on tmpfs, outside the test's temporary directory.
        Path ram = ramRoot();
        if (Files.exists(ram)) {
            try (Stream<Path> s = Files.walk(ram)) {
                s.sorted(java.util.Comparator.reverseOrder())
                        .forEach(f -> f.toFile().delete());
            } catch (IOException e) {
                // best effort: /dev/shm is cleared at boot
            }
        }
    }

    private static Path ramRoot() {
        return Path.of("/dev/shm", "ferry-dist-it-" + ProcessHandle.current().pid());
    }

    @Test
    void theTarballsFerryRunsOnItsOwnRuntimeAndPrintsTheBuildsVersion() throws Exception {
        Result r = ferry("--version");
        assertEquals(0, r.exit, r.err);
        assertTrue(r.out.startsWith("ferry " + version + " (Java 25"), r.out);
        assertEquals(version, Files.readString(home.resolve("VERSION")).strip());
    }

    @Test
    void theSystemdUnitsVerify() throws Exception {
        QemuTestSupport.requireCommand("systemd-analyze");
        // The units name /opt/ferry, where docs/INSTALL.md unpacks the tarball; systemd-analyze checks
        // that ExecStart exists, so the copies checked here name where this test unpacked it.
        Path units = Files.createDirectory(tmp.resolve("units"));
        List<String> args = new ArrayList<>(List.of("systemd-analyze", "verify"));
        try (Stream<Path> s = Files.list(home.resolve("systemd"))) {
            for (Path u : s.sorted().toList()) {
                Path copy = units.resolve(u.getFileName());
                Files.writeString(copy, Files.readString(u).replace("/opt/ferry", home.toString()));
                args.add(copy.toString());
            }
        }
        assertEquals(4, args.size(), "two units: " + args);
        Result r = run(args, env, Duration.ofMinutes(1));
        assertEquals(0, r.exit, r.out + r.err);
        // verify exits 0 on unknown keys and bad values too, printing them: any line is a failure.
        assertEquals("", (r.out + r.err).strip());
    }

    @Test
    void anAgentAndACoordinatorStartFromTheirConfigFilesAndAQemuGuestMigrates() throws Exception {
        QemuTestSupport.requireQemu();
        QemuTestSupport.requireDirtyTracking();
        Path pki = tmp.resolve("pki");
        ok(ferry("pki", "init", "--dir", pki.toString(), "--cluster-name", "dist-it"));
        ok(ferry(
                "pki",
                "issue",
                "coordinator-1",
                "--role",
                "coordinator",
                "--dir",
                pki.toString(),
                "--san",
                "127.0.0.1"));
        for (String h : List.of("host-1", "host-2")) {
            ok(ferry("pki", "issue", h, "--role", "agent", "--dir", pki.toString()));
        }
        ok(ferry("pki", "issue", "alice", "--role", "operator", "--dir", pki.toString()));

        Path coordinatorEndpoint = tmp.resolve("coordinator.endpoint");
        Path coordinatorConf = conf(
                "coordinator.conf", """
                # as /etc/ferry/coordinator.conf would say, with an embedded ZooKeeper for the test
                embedded-zk = %s
                cluster-name = dist-it
                listen = 127.0.0.1:0
                single-machine = true
                endpoint-file = %s
                """.formatted(tmp.resolve("zk"), coordinatorEndpoint) + tls(pki, "coordinator-1"));
        start("coordinator", coordinatorConf);
        String zk = awaitEndpoints(coordinatorEndpoint).get("zookeeper");

        for (String h : List.of("host-1", "host-2")) {
            Path data = tmp.resolve(h);
            Path conf = conf(
                    h + ".conf",
                    """
                    host-id = %s
                    listen = 127.0.0.1:0
                    single-machine = true
                    data-dir = %s
                    ram-dir = %s
                    driver = qemu
                    zk = %s
                    cluster-name = dist-it
                    endpoint-file = %s
                    on-exit = stop-guests
                    log-format = json
                    """.formatted(h, data, ramRoot().resolve(h), zk, data.resolve("endpoint")) + tls(pki, h));
            start("agent", conf);
            awaitEndpoints(data.resolve("endpoint"));
        }
        String[] cluster = {
            "--zk",
            zk,
            "--cluster-name",
            "dist-it",
            "--cert",
            pki.resolve("alice.crt").toString(),
            "--key",
            pki.resolve("alice.key").toString(),
            "--ca",
            pki.resolve("ca.crt").toString()
        };
        Timing.await("both agents registered", Duration.ofSeconds(60), () -> {
            try {
                Result r = ferry(cat(new String[] {"host", "list", "--json"}, cluster));
                if (r.exit != 0) {
                    return false;
                }
                JsonNode hosts = JSON.readTree(r.out).path("hosts");
                int alive = 0;
                for (JsonNode h : hosts) {
                    alive += h.path("alive").asBoolean() ? 1 : 0;
                }
                return alive == 2;
            } catch (IOException e) {
                return false;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
        });
        ok(ferry(cat(new String[] {"vm", "create", "web", "--memory", "128M", "--host", "host-1"}, cluster)));
        Result m = ferry(cat(new String[] {"migrate", "web", "--to", "host-2", "--json"}, cluster));
        assertEquals(0, m.exit, m.out + m.err);
        JsonNode report = JSON.readTree(m.out);
        assertEquals("completed", report.path("status").asText(), m.out);
        assertEquals("host-2", report.path("target").asText(), m.out);
        JsonNode vms = JSON.readTree(ok(ferry(cat(new String[] {"vm", "list", "--json"}, cluster))).out);
        assertEquals("host-2", vms.path("vms").path(0).path("host").asText(), vms.toString());
        ok(ferry(cat(new String[] {"vm", "delete", "web"}, cluster)));

        // --log-format json (from the config file): the source's lines of the migration carry it as fields.
        String migrationId = report.path("migrationId").asText("");
        boolean found = false;
        for (String line : Files.readAllLines(tmp.resolve("host-1.conf.log"))) {
            if (!line.startsWith("{")) {
                continue;
            }
            JsonNode l = JSON.readTree(line);
            assertEquals(
                    "host-1", l.path("context").path("properties").path("host").asText(), line);
            if (l.path("formattedMessage").asText().startsWith("migrated web to host-2")) {
                assertEquals("web", l.path("mdc").path("vm").asText(), line);
                assertEquals("host-2", l.path("mdc").path("target").asText(), line);
                assertTrue(!l.path("mdc").path("migration").asText().isEmpty(), line);
                found = true;
            }
        }
        assertTrue(found, "no JSON line of the migration in the source agent's log: " + migrationId);
    }

    private static String tls(Path pki, String name) {
        return "cert = %s\nkey = %s\nca = %s\n"
                .formatted(pki.resolve(name + ".crt"), pki.resolve(name + ".key"), pki.resolve("ca.crt"));
    }

    private static Path conf(String name, String text) throws IOException {
        return Files.writeString(tmp.resolve(name), text);
    }

    private static void start(String daemon, Path conf) throws IOException {
        File log = tmp.resolve(conf.getFileName() + ".log").toFile();
        ProcessBuilder pb = new ProcessBuilder(
                        home.resolve("bin/ferry").toString(), daemon, "--config", conf.toString())
                .redirectErrorStream(true)
                .redirectOutput(log);
        pb.environment().clear();
        pb.environment().putAll(env);
        daemons.add(pb.start());
    }

    private static Map<String, String> awaitEndpoints(Path file) throws IOException {
        Timing.await(file + " written", Duration.ofSeconds(60), () -> {
            daemons.forEach(p -> assertTrue(p.isAlive(), "a daemon exited; see " + tmp + "/*.log"));
            return Files.exists(file);
        });
        Map<String, String> m = new HashMap<>();
        for (String line : Files.readAllLines(file)) {
            String[] kv = line.strip().split("\\s+", 2);
            m.put(kv.length == 2 ? kv[0] : "endpoint", kv[kv.length - 1]);
        }
        return m;
    }

    private static String[] cat(String[] a, String[] b) {
        return Stream.concat(Stream.of(a), Stream.of(b)).toArray(String[]::new);
    }

    private record Result(int exit, String out, String err) {}

    private static Result ok(Result r) {
        assertEquals(0, r.exit, r.out + r.err);
        return r;
    }

    private static Result ferry(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(home.resolve("bin/ferry").toString()));
        cmd.addAll(List.of(args));
        Result r = run(cmd, env, Duration.ofMinutes(3));
        assertTrue(!r.err.contains("a java from the PATH was run"), "the tarball ran a JDK of the host: " + r.err);
        return r;
    }

    private static Result run(List<String> cmd, Map<String, String> environment, Duration timeout)
            throws IOException, InterruptedException {
        Path out = Files.createTempFile(tmp, "out", ".txt");
        Path err = Files.createTempFile(tmp, "err", ".txt");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(out.toFile()).redirectError(err.toFile());
        pb.environment().clear();
        pb.environment().putAll(environment);
        Process p = pb.start();
        if (!p.waitFor(Timing.scaled(timeout).toMillis(), TimeUnit.MILLISECONDS)) {
            p.destroyForcibly();
            throw new AssertionError(cmd + " did not finish within " + timeout);
        }
        return new Result(
                p.exitValue(),
                Files.readString(out, StandardCharsets.UTF_8),
                Files.readString(err, StandardCharsets.UTF_8));
    }
}
