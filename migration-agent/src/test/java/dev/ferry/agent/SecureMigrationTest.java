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
