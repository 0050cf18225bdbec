package dev.ferry.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.agent.client.AgentClient;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.hypervisor.sim.SimVm;
import dev.ferry.pki.CertificateAuthority;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.Role;
import dev.ferry.proto.agent.MigrateRequest;
import dev.ferry.proto.agent.MigrationOptions;
import dev.ferry.proto.agent.MigrationPhase;
import dev.ferry.proto.agent.MigrationSummary;
import dev.ferry.proto.agent.PrepareIncomingRequest;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.vm.Pattern;
import dev.ferry.proto.vm.VmSpec;
import dev.ferry.proto.vm.VmState;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import dev.ferry.testing.Timing;
import io.grpc.Status;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Live migration between two standalone agents speaking mutual TLS, and what a third host of the
 * same cluster (a valid certificate, the wrong identity) can no longer do.
 */
class SecureMigrationTest {
    @TempDir
    static Path dir;

    static Credentials hostA;
    static Credentials hostB;
    static Credentials hostC;
    static Credentials operator;

    AgentPair pair;

    @BeforeAll
    static void issue() {
        Clock utc = Clock.systemUTC();
        CertificateAuthority ca = CertificateAuthority.create(dir.resolve("ca"), "lab", Duration.ofDays(2), utc);
        hostA = ca.issue("host-a", Role.AGENT, Duration.ofDays(1), List.of(), List.of(), dir.resolve("a"), utc);
        hostB = ca.issue("host-b", Role.AGENT, Duration.ofDays(1), List.of(), List.of(), dir.resolve("b"), utc);
        hostC = ca.issue("host-c", Role.AGENT, Duration.ofDays(1), List.of(), List.of(), dir.resolve("c"), utc);
        operator = ca.issue("alice", Role.OPERATOR, Duration.ofDays(1), List.of(), List.of(), dir.resolve("o"), utc);
    }

    @BeforeEach
    void start() throws Exception {
        pair = new AgentPair(
                Transport.mutualTls(hostA),
                Transport.mutualTls(hostB),
                Transport.mutualTls(operator),
                d -> new SimDriver(),
                c -> c);
    }

    @AfterEach
    void stop() throws Exception {
        pair.close();
    }

    private static MigrateRequest migrate(String vm, String targetHost, Endpoint target) {
        return MigrateRequest.newBuilder()
                .setVm(vm)
                .setTargetHost(targetHost)
                .setTargetEndpoint(target.toString())
                .setOptions(MigrationOptions.newBuilder().setVerify(true).setStreams(2))
                .build();
    }

    @Test
    void aGuestMovesLiveAndVerifiedOverMutualTls() throws Exception {
        pair.createRunning(AgentPair.busyGuest("web", 32L << 20, 2000));
        SimVm source = (SimVm) pair.a.instance("web");
        Timing.await("guest running", Duration.ofSeconds(10), () -> source.heartbeat() > 10);
        MigrationSummary s = pair.clientA
                .migrate(migrate("web", "host-b", pair.b.endpoint()), e -> {})
                .getSummary();
        assertEquals(MigrationPhase.MIGRATION_PHASE_COMPLETED, s.getStatus(), s.getError());
        assertTrue(s.getMemoryVerified());
        assertEquals(VmState.VM_STATE_RUNNING, pair.clientB.getVm("web").getState());
    }

    @Test
    void aSourceSendsNothingToAHostThatIsNotTheNamedTarget() throws Exception {
        // host-c answers at the address given for host-b (a hijacked registration, a stale DNS
        // entry): its certificate is valid for the cluster but it is not host-b, so the source
        // refuses at the handshake and the guest stays where it was.
        try (AgentPair rogue = new AgentPair(
                Transport.mutualTls(hostC),
                Transport.mutualTls(hostC),
                Transport.mutualTls(operator),
                d -> new SimDriver(),
                c -> c)) {
            pair.createRunning(AgentPair.busyGuest("db", 16L << 20, 500));
            MigrationSummary s = pair.clientA
                    .migrate(migrate("db", "host-b", rogue.b.endpoint()), e -> {})
                    .getSummary();
            assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, s.getStatus());
            assertEquals(MigrationStep.MIGRATION_STEP_PREPARE, s.getFailedStep(), s.getError());
            assertEquals(VmState.VM_STATE_RUNNING, pair.clientA.getVm("db").getState());
            assertTrue(rogue.b.instance("db") == null, "the rogue host got nothing");
        }
    }

    /**
     * A client re-checked a server only at its next handshake: a source kept streaming guest memory
     * to a destination whose certificate was revoked mid-migration, for as long as the lanes lived.
     */
    @Test
    void aSourceStopsSendingToADestinationRevokedMidMigrationAndKeepsRunning() throws Exception {
        Clock utc = Clock.systemUTC();
        CertificateAuthority ca = CertificateAuthority.load(dir.resolve("ca"));
        // A certificate of host-b's own, so that revoking it leaves the other tests' host-b alone.
        Credentials revocableB =
                ca.issue("host-b", Role.AGENT, Duration.ofDays(1), List.of(), List.of(), dir.resolve("b2"), utc);
        try (AgentPair p = new AgentPair(
                Transport.mutualTls(hostA.withRevocationList(ca.revocationListFile())),
                Transport.mutualTls(revocableB),
                Transport.mutualTls(operator),
                d -> new SimDriver(),
                c -> c)) {
            VmSpec spec = AgentPair.busyGuest("vault", 64L << 20, 500).toBuilder()
                    .setWorkload(AgentPair.busyGuest("vault", 64L << 20, 500).getWorkload().toBuilder()
                            .setPattern(Pattern.PATTERN_RANDOM))
                    .build();
            p.createRunning(spec);
            SimVm source = (SimVm) p.a.instance("vault");
            // 4 MiB/s: the first round of 64 MiB of random pages takes about 16 s, so the revocation
            // lands while guest memory is on its way.
            MigrateRequest slow = migrate("vault", "host-b", p.b.endpoint()).toBuilder()
                    .setOptions(migrate("vault", "host-b", p.b.endpoint()).getOptions().toBuilder()
                            .setMaxBandwidthBytesPerSec(4L << 20))
                    .build();
            long[] revokedAt = {0};
            long[] bytesAtRevocation = {0};
            long[] bytesAfter = {0};
            MigrationSummary s = p.clientA
                    .migrate(slow, e -> {
                        long sent = e.getRound().getWireBytes();
                        if (revokedAt[0] == 0 && e.getPhase() == MigrationPhase.MIGRATION_PHASE_ROUND && sent > 0) {
                            bytesAtRevocation[0] = sent;
                            ca.revoke(List.of(revocableB.loadCertificate()), utc);
                            revokedAt[0] = System.nanoTime();
                        } else if (revokedAt[0] != 0) {
                            bytesAfter[0] = Math.max(bytesAfter[0], sent);
                        }
                    })
                    .getSummary();
            long failedMs = (System.nanoTime() - revokedAt[0]) / 1_000_000;
            System.out.println("migration to the revoked destination failed " + failedMs + " ms after the revocation;"
                    + " wire bytes of the round at the revocation " + bytesAtRevocation[0] + ", highest reported after "
                    + bytesAfter[0] + ", in all " + s.getBytesTransferred() + " of " + (64L << 20));
            assertTrue(revokedAt[0] != 0, "the migration never reported bytes sent: " + s);
            assertEquals(MigrationPhase.MIGRATION_PHASE_FAILED, s.getStatus(), s.toString());
            assertTrue(s.getError().contains("host-b") && s.getError().contains("revoked"), s.getError());
            assertTrue(s.getBytesTransferred() < (64L << 20), "the whole guest went to a revoked host: " + s);
            // The source runs on where it was; the destination lets go of what it had received.
            assertEquals(VmState.VM_STATE_RUNNING, p.clientA.getVm("vault").getState());
            long beat = source.heartbeat();
            Timing.await("the source guest runs on", Duration.ofSeconds(10), () -> source.heartbeat() > beat);
            Timing.await("the destination discards the incoming guest", Duration.ofSeconds(30), () -> {
                try {
                    return p.clientB.listVms().isEmpty() && p.ramFiles(p.b) == 0;
                } catch (java.io.IOException e) {
                    return false;
                }
            });
        } finally {
            java.nio.file.Files.deleteIfExists(ca.revocationListFile());
        }
    }

    @Test
    void anotherHostCannotPrepareAMigrationInTheSourcesName() {
        try (AgentClient asC =
                new AgentClient(Transport.mutualTls(hostC), "host-b", pair.b.endpoint(), Duration.ofSeconds(20))) {
            AgentCallException x = assertThrows(
                    AgentCallException.class,
                    () -> asC.prepareIncoming(PrepareIncomingRequest.newBuilder()
                            .setMigrationId("m-1")
                            .setSourceHost("host-a")
                            .setSpec(AgentPair.busyGuest("x", 16L << 20, 0))
                            .setEpoch(1)
                            .build()));
            assertEquals(Status.Code.PERMISSION_DENIED, x.code(), x.getMessage());
            assertTrue(x.getMessage().contains("ferry://lab/agent/host-c"), x.getMessage());
        }
    }

    @Test
    void anAgentCannotOrderAnotherAgent() {
        pair.createRunning(AgentPair.busyGuest("app", 16L << 20, 0));
        try (AgentClient asC =
                new AgentClient(Transport.mutualTls(hostC), "host-a", pair.a.endpoint(), Duration.ofSeconds(20))) {
            AgentCallException x = assertThrows(AgentCallException.class, () -> asC.stopVm("app"));
            assertEquals(Status.Code.PERMISSION_DENIED, x.code(), x.getMessage());
            assertNotNull(pair.a.instance("app"));
        }
    }
}
