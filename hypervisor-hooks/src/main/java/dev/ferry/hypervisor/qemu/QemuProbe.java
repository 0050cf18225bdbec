package dev.ferry.hypervisor.qemu;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferry.hypervisor.HypervisorException;
import dev.ferry.hypervisor.HypervisorProfile;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Asks this host's QEMU what it runs: a short-lived {@code qemu-system-x86_64 -machine none -S}
 * with QMP on its stdio answers {@code query-version}, {@code query-machines} and {@code
 * query-cpu-definitions}, then quits. The CPU models are those whose {@code unavailable-features}
 * is empty under the accelerator the VMs of this host get: under TCG that is what QEMU emulates,
 * under KVM what the host CPU (and KVM) offers, so the same QEMU gives different answers on
 * different hosts and each host must probe for itself.
 */
public final class QemuProbe {
    private static final ObjectMapper JSON = new ObjectMapper();

    private QemuProbe() {}

    /** Runs the probe (a second or so under TCG); {@code accel} must be resolved. */
    public static HypervisorProfile probe(Path binary, Accel accel, Duration timeout) throws HypervisorException {
        if (accel == Accel.AUTO) {
            throw new IllegalArgumentException("resolve Accel.AUTO before probing");
        }
        List<String> argv = List.of(
                binary.toString(),
                "-machine",
                "none",
                "-accel",
                accel.qemuName(),
                "-S",
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-qmp",
                "stdio");
        ProcessBuilder pb = new ProcessBuilder(ProcessLauncher.withParentDeathSignal(argv))
                .redirectError(ProcessBuilder.Redirect.DISCARD);
        Process p;
        try {
            p = ProcessLauncher.start(pb);
        } catch (IOException e) {
            throw new HypervisorException("probe qemu", "cannot start " + binary + ": " + e.getMessage(), e);
        }
        BlockingQueue<JsonNode> replies = new ArrayBlockingQueue<>(64);
        Thread reader = Thread.ofVirtual().name("qemu-probe-reader").start(() -> {
            try (BufferedReader r =
                    new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    JsonNode n = JSON.readTree(line);
                    if (n.has("return") || n.has("error") || n.has("QMP")) {
                        replies.put(n);
                    }
                }
            } catch (IOException | InterruptedException e) {
                // The process ended or was killed: the caller times out on what is missing.
            }
        });
        long deadline = System.nanoTime() + timeout.toNanos();
        try (OutputStream in = p.getOutputStream()) {
            next(replies, deadline, "greeting");
            ask(in, replies, deadline, "qmp_capabilities");
            JsonNode version = ask(in, replies, deadline, "query-version");
            JsonNode machines = ask(in, replies, deadline, "query-machines");
            JsonNode cpus = ask(in, replies, deadline, "query-cpu-definitions");
            return profile(version, machines, cpus, accel.qemuName());
        } catch (IOException e) {
            throw new HypervisorException("probe qemu", binary + " -machine none: " + e.getMessage(), e);
        } finally {
            p.destroyForcibly();
            try {
                p.waitFor(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            reader.interrupt();
        }
    }

    private static JsonNode ask(OutputStream in, BlockingQueue<JsonNode> replies, long deadline, String command)
            throws IOException, HypervisorException {
        in.write(("{\"execute\":\"" + command + "\"}\n").getBytes(StandardCharsets.UTF_8));
        in.flush();
        JsonNode r = next(replies, deadline, command);
        if (r.has("error")) {
            throw new HypervisorException(
                    "probe qemu",
                    command + " failed: " + r.path("error").path("desc").asText());
        }
        return r.path("return");
    }

    private static JsonNode next(BlockingQueue<JsonNode> replies, long deadline, String what)
            throws HypervisorException {
        try {
            JsonNode n = replies.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            if (n == null) {
                throw new HypervisorException("probe qemu", "no answer to " + what + " in time (did QEMU start?)");
            }
            return n;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new HypervisorException("probe qemu", "interrupted waiting for " + what, e);
        }
    }

    /**
     * The profile from QMP's answers (pure, unit-tested): machine types with their aliases, and
     * the CPU models with nothing unavailable.
     */
    static HypervisorProfile profile(JsonNode version, JsonNode machines, JsonNode cpus, String accel) {
        TreeSet<String> types = new TreeSet<>();
        Map<String, String> aliases = new TreeMap<>();
        for (JsonNode m : machines) {
            String name = m.path("name").asText();
            types.add(name);
            if (m.hasNonNull("alias")) {
                types.add(m.path("alias").asText());
                aliases.put(m.path("alias").asText(), name);
            }
        }
        List<String> models = new ArrayList<>();
        for (JsonNode c : cpus) {
            JsonNode missing = c.path("unavailable-features");
            // Without the field QEMU cannot tell (an accelerator that does not report): not offered.
            if (missing.isArray() && missing.isEmpty()) {
                models.add(c.path("name").asText());
            }
        }
        models.sort(null);
        return new HypervisorProfile(
                QemuVersion.fromQueryVersion(version).number(), accel, List.copyOf(types), aliases, models);
    }
}
