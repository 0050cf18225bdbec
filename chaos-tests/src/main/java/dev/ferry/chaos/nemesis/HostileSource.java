package dev.ferry.chaos.nemesis;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.migration.wire.HostileBatches;
import dev.ferry.migration.wire.RawLane;
import dev.ferry.pki.Credentials;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.agent.PrepareIncomingResponse;
import dev.ferry.proto.migration.Hello;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.RoundEnd;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.proto.migration.Switchover;
import dev.ferry.proto.migration.TransferMode;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.PeerRequirement;
import dev.ferry.rpc.Transport;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Scenario 13's compromised source host. Across hosts every migration lane is mutual TLS and is
 * accepted only from the source host a PrepareIncoming named, so the only sender of hostile frames
 * is a source host whose agent is compromised: it holds a valid agent certificate for its own host
 * id. This program is that agent: run as its own process in the source host's namespace with the
 * host's certificate, it prepares a fresh VM on the destination as a real source does
 * ({@code PreCopySender}: PrepareIncoming, then one Transfer call per lane opening with a Hello
 * carrying the token), then follows one hostile {@link Script} instead of the protocol, and waits
 * for the destination to end the call.
 *
 * <p>Arguments: CERT KEY CA SOURCE-HOST TARGET-HOST TARGET-ENDPOINT MEMORY-BYTES WAIT-MS, then one
 * or more attempts VM:SCRIPT:VARIANT:SEED, run in turn (one JVM start for them all: on a loaded
 * machine a start takes seconds). Prints one line per attempt ({@link Outcome#line()}); it judges
 * nothing, the scenario does. Exits 0 once every attempt ran, whatever the destination answered.
 */
public final class HostileSource {
    private HostileSource() {}

    private static final int PAGE_SIZE = 4096;
    private static final int WINDOW = MigrationStreamRpc.WINDOW_PAGES;

    /** What the compromised source sends instead of a migration, and what the destination must say. */
    public enum Script {
        /** A sealed batch whose base page (VARIANT, unsigned) lies at or past the end of guest memory. */
        PAGES_BEYOND_MEMORY("pages-beyond-memory", 1),
        /**
         * A count of 2^31 or more (negative as a Java int or long): a zero run of N pages in window 0
         * ({@code zero-run-N}), or, after a whole first round, a final RoundEnd of round 1 claiming N
         * pages in no batch ({@code round-end-N}).
         */
        HUGE_COUNT("huge-count", 1),
        /** Two lanes; lane 0 sends its whole first round, its final RoundEnd, then that RoundEnd again. */
        REPEATED_FINAL_ROUND_END("repeated-final-round-end", 2),
        /** VARIANT bytes that are no frame (a tag of field 0 first, then seeded noise) after the hello. */
        GARBAGE("garbage", 1),
        /** Lane 0 of 2 says hello, sends its final round and a Switchover; lane 1 never says hello. */
        SWITCHOVER_BEFORE_HELLOS("switchover-before-hellos", 2),
        /** Says hello and then nothing, connected: only the destination's idle deadline ends it. */
        SILENT_AFTER_HELLO("silent-after-hello", 1);

        public final String id;
        /** Lanes the migration says it has. */
        final int lanes;

        Script(String id, int lanes) {
            this.id = id;
            this.lanes = lanes;
        }

        public static Script of(String id) {
            for (Script s : values()) {
                if (s.id.equals(id)) {
                    return s;
                }
            }
            throw new IllegalArgumentException("no script " + id);
        }

        /**
         * Text the destination's refusal must hold for {@code variant} of this script (its own check,
         * not a deadline that happened to end the call), or "" where any error will do: garbage is
         * refused by gRPC's parsing, before the agent sees a frame, in gRPC's words.
         */
        public String expected(String variant) {
            return switch (this) {
                case PAGES_BEYOND_MEMORY -> "batch base page " + variant + " is not a window start below";
                case HUGE_COUNT ->
                    variant.startsWith("zero-run-")
                            ? "zero run 0+" + variant.substring("zero-run-".length()) + " out of order or out of window"
                            : "source sent 0 batches of " + variant.substring("round-end-".length()) + " pages";
                case REPEATED_FINAL_ROUND_END -> "sent its final round end twice";
                case GARBAGE -> "";
                case SWITCHOVER_BEFORE_HELLOS -> "switchover with 1 of 2 lanes attached";
                case SILENT_AFTER_HELLO -> "no frame from the source for";
            };
        }

        /** Whether only the destination's idle deadline can end it (so it takes that long). */
        public boolean waitsForTheIdleDeadline() {
            return this == SILENT_AFTER_HELLO;
        }
    }

    /**
     * How one attempt went: what was sent, how the destination ended the call (the gRPC status of
     * lane 0's end and its description; READY or COMPLETED if it accepted; OPEN if it did not end
     * within the wait) and how long that took from the last frame sent; then whether the VM's name
     * was free again on the destination ({@code free}, once a second prepare of it was taken, and
     * let go of at once).
     */
    public record Outcome(
            String vm,
            String script,
            String variant,
            String prepare,
            String sent,
            String status,
            long ms,
            String name,
            String description) {
        Outcome withName(String n) {
            return new Outcome(vm, script, variant, prepare, sent, status, ms, n, description);
        }

        /** Tab-separated key=value fields, the description last. */
        public String line() {
            Map<String, String> f = new LinkedHashMap<>();
            f.put("vm", vm);
            f.put("script", script);
            f.put("variant", variant);
            f.put("prepare", prepare);
            f.put("sent", sent);
            f.put("status", status);
            f.put("ms", Long.toString(ms));
            f.put("name", name);
            f.put("description", description);
            List<String> parts = new ArrayList<>();
            f.forEach((k, v) -> parts.add(k + "=" + v.replace('\t', ' ').replace('\n', ' ')));
            return String.join("\t", parts);
        }

        public static Outcome parse(String line) {
            Map<String, String> f = new LinkedHashMap<>();
            for (String part : line.split("\t")) {
                int eq = part.indexOf('=');
                if (eq > 0) {
                    f.put(part.substring(0, eq), part.substring(eq + 1));
                }
            }
            if (!f.containsKey("vm") || !f.containsKey("status")) {
                throw new IllegalArgumentException("not an outcome line: " + line);
            }
            return new Outcome(
                    f.get("vm"),
                    f.getOrDefault("script", ""),
                    f.getOrDefault("variant", ""),
                    f.getOrDefault("prepare", ""),
                    f.getOrDefault("sent", ""),
                    f.get("status"),
                    Long.parseLong(f.getOrDefault("ms", "-1")),
                    f.getOrDefault("name", ""),
                    f.getOrDefault("description", ""));
        }

        /** The destination refused: the call ended with an error status, never accepted nor left open. */
        public boolean refused() {
            return prepare.equals("ok")
                    && !List.of("OK", "READY", "COMPLETED", "OPEN").contains(status);
        }
    }

    public static void main(String[] args) throws Exception {
        Credentials creds = Credentials.load(Path.of(args[0]), Path.of(args[1]), Path.of(args[2]), Clock.systemUTC());
        Transport transport = Transport.mutualTls(creds);
        Target t = new Target(
                args[3],
                args[4],
                Endpoint.parse(args[5]),
                Long.parseLong(args[6]),
                Duration.ofMillis(Long.parseLong(args[7])));
        for (int i = 8; i < args.length; i++) {
            String[] a = args[i].split(":", 4);
            Outcome o = attempt(transport, t, a[0], Script.of(a[1]), a[2], Long.parseLong(a[3]));
            System.out.println(o.line());
            System.out.flush();
        }
        // gRPC's threads are not daemons: the process ends here, every call of it over.
        System.exit(0);
    }

    private record Target(String source, String host, Endpoint endpoint, long memory, Duration endWait) {}

    private static Outcome attempt(Transport transport, Target t, String vm, Script script, String variant, long seed)
            throws InterruptedException {
        VmSpec spec = VmSpec.newBuilder()
                .setName(vm)
                .setMemoryBytes(t.memory())
                .setVcpus(1)
                .build();
        String id = "hostile-" + vm + "-" + Long.toHexString(seed);
        PrepareIncomingResponse prepared;
        try (AgentClient target = new AgentClient(transport, t.host(), t.endpoint(), Duration.ofSeconds(30))) {
            prepared = target.prepareIncoming(prepare(t, spec, id));
        } catch (AgentCallException e) {
            return new Outcome(vm, script.id, variant, "failed: " + e.getMessage(), "", "", -1, "", "");
        }
        Endpoint stream = Endpoint.parse(prepared.getStreamEndpoint());
        List<ManagedChannel> channels = new ArrayList<>();
        List<RawLane> lanes = new ArrayList<>();
        try {
            // Each lane on its own connection, as PreCopySender opens them; the second lane of a
            // switchover-before-hellos migration is never opened.
            int open = script == Script.SWITCHOVER_BEFORE_HELLOS ? 1 : script.lanes;
            for (int i = 0; i < open; i++) {
                ManagedChannel ch = transport.laneChannel(stream, PeerRequirement.agent(t.host()));
                channels.add(ch);
                RawLane lane = new RawLane(ch, Duration.ofSeconds(30));
                lanes.add(lane);
                lane.attach(Hello.newBuilder()
                        .setProtocolVersion(MigrationStreamRpc.PROTOCOL_VERSION)
                        .setMigrationId(id)
                        .setToken(prepared.getToken())
                        .setSpec(spec)
                        .setRamBytes(t.memory())
                        .setPageSize(PAGE_SIZE)
                        .setLane(i)
                        .setLaneCount(script.lanes)
                        .setSourceHost(t.source())
                        .setMode(TransferMode.TRANSFER_MODE_PRECOPY)
                        .setWindowPages(WINDOW));
            }
            RawLane lane0 = lanes.getFirst();
            long pages = t.memory() / PAGE_SIZE;
            String sent = send(script, variant, seed, lane0, pages);
            long sentAt = System.nanoTime();
            Outcome o = ending(vm, script, variant, sent, lane0, sentAt, t.endWait());
            return o.withName(nameAfter(transport, t, spec, id));
        } catch (RuntimeException e) {
            // A hello refused (or no answer to it) is the destination's doing too: it is reported.
            return new Outcome(vm, script.id, variant, "ok", "hello", "HELLO-REFUSED", -1, "", e.getMessage());
        } finally {
            for (RawLane l : lanes) {
                try {
                    l.cancel("hostile source done");
                } catch (RuntimeException e) {
                    // the call is over already
                }
            }
            for (ManagedChannel ch : channels) {
                ch.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    /** The PrepareIncoming a real source sends for {@code spec} (PreCopySender's), as migration {@code id}. */
    private static PrepareIncomingRequest prepare(Target t, VmSpec spec, String id) {
        return PrepareIncomingRequest.newBuilder()
                .setMigrationId(id)
                .setSpec(spec)
                .setSourceHost(t.source())
                .setMode(TransferMode.TRANSFER_MODE_PRECOPY)
                .setEpoch(1)
                .build();
    }

    /** Sends the script's frames after the hellos; returns what it sent, in words. */
    private static String send(Script script, String variant, long seed, RawLane lane0, long pages) {
        switch (script) {
            case PAGES_BEYOND_MEMORY -> {
                long base = Long.parseUnsignedLong(variant);
                lane0.send(SenderFrame.newBuilder()
                        .setPages(HostileBatches.zeroWindow(
                                Long.divideUnsigned(base, WINDOW), 0, WINDOW, PAGE_SIZE, WINDOW)));
                return "a sealed zero batch at base page " + variant + " (the guest has " + pages + " pages)";
            }
            case HUGE_COUNT -> {
                long n = Long.parseUnsignedLong(variant.substring(variant.lastIndexOf('-') + 1));
                if (variant.startsWith("zero-run-")) {
                    lane0.send(SenderFrame.newBuilder()
                            .setPages(HostileBatches.zeroWindow(0, 0, (int) n, PAGE_SIZE, WINDOW)));
                    return "a sealed batch of window 0 with a zero run of " + Long.toUnsignedString(n) + " pages";
                }
                lane0.sendZeroFirstRound(pages, PAGE_SIZE, 0, 1, false);
                lane0.send(SenderFrame.newBuilder()
                        .setRoundEnd(RoundEnd.newBuilder()
                                .setRound(1)
                                .setBatches(0)
                                .setPages(n)
                                .setFinal(true)));
                return "a whole first round, then a final RoundEnd of round 1 claiming 0 batches of "
                        + Long.toUnsignedString(n) + " pages";
            }
            case REPEATED_FINAL_ROUND_END -> {
                RoundEnd end = lane0.sendZeroFirstRound(pages, PAGE_SIZE, 0, 2, true);
                lane0.send(SenderFrame.newBuilder().setRoundEnd(end));
                return "lane 0's whole first round and its final RoundEnd (" + end.getBatches() + " batches), twice";
            }
            case GARBAGE -> {
                byte[] junk = new byte[Math.max(1, Integer.parseInt(variant))];
                new SplittableRandom(seed).nextBytes(junk);
                // A tag of field 0 (never valid), so the bytes cannot parse as a frame by chance.
                junk[0] = 0x07;
                lane0.sendBytes(junk);
                return junk.length + " bytes that are no frame";
            }
            case SWITCHOVER_BEFORE_HELLOS -> {
                lane0.sendZeroFirstRound(pages, PAGE_SIZE, 0, 2, true);
                lane0.send(SenderFrame.newBuilder()
                        .setSwitchover(Switchover.newBuilder().setFinalRound(0)));
                return "lane 0 of 2: its whole first round, final, then a Switchover; lane 1 never said hello";
            }
            case SILENT_AFTER_HELLO -> {
                return "a hello, then nothing (connected)";
            }
        }
        throw new IllegalStateException("unreachable");
    }

    /** Waits for the destination to end lane 0's call; what it said, and how long after {@code sentAt}. */
    private static Outcome ending(
            String vm, Script script, String variant, String sent, RawLane lane0, long sentAt, Duration wait)
            throws InterruptedException {
        Throwable end;
        try {
            end = lane0.ended().get(wait.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            return new Outcome(vm, script.id, variant, "ok", sent, "OPEN", -1, "", "no end within " + wait);
        } catch (java.util.concurrent.ExecutionException e) {
            end = e.getCause();
        }
        long ms = (System.nanoTime() - sentAt) / 1_000_000;
        for (ReceiverFrame f : lane0.frames()) {
            if (f.hasReady()) {
                return new Outcome(vm, script.id, variant, "ok", sent, "READY", ms, "", f.toString());
            }
        }
        if (end == null) {
            return new Outcome(vm, script.id, variant, "ok", sent, "COMPLETED", ms, "", "");
        }
        Status s = Status.fromThrowable(end);
        return new Outcome(
                vm,
                script.id,
                variant,
                "ok",
                sent,
                s.getCode().name(),
                ms,
                "",
                s.getDescription() == null ? "" : s.getDescription());
    }

    /**
     * Whether the destination let go of the VM's name: a second prepare of it (as the same source
     * would send to retry) is taken once the refusal's discard has run, within 10 s; the prepared
     * migration is then cancelled at once, as a source abandons one. "free", or why not.
     */
    private static String nameAfter(Transport transport, Target t, VmSpec spec, String id) throws InterruptedException {
        long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        try (AgentClient target = new AgentClient(transport, t.host(), t.endpoint(), Duration.ofSeconds(30))) {
            while (true) {
                try {
                    target.prepareIncoming(prepare(t, spec, id + "-again"));
                } catch (AgentCallException e) {
                    // The refusal reaches the source as the discard begins; the name follows a moment later.
                    if (e.code() == Status.Code.ALREADY_EXISTS && System.nanoTime() < deadline) {
                        Thread.sleep(100);
                        continue;
                    }
                    return "held: " + e.getMessage();
                }
                try {
                    target.cancelIncoming(spec.getName(), id + "-again", "hostile source: the name was free");
                } catch (AgentCallException e) {
                    return "free, but the cancel of its second prepare failed: " + e.getMessage();
                }
                return "free";
            }
        }
    }
}
