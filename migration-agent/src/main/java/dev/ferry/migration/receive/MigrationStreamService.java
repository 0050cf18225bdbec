package dev.ferry.migration.receive;

import dev.ferry.migration.MigrationStreamRpc;
import dev.ferry.pki.Identity;
import dev.ferry.proto.migration.Abort;
import dev.ferry.proto.migration.HelloAck;
import dev.ferry.proto.migration.MigrationStep;
import dev.ferry.proto.migration.ReceiverFrame;
import dev.ferry.proto.migration.SenderFrame;
import dev.ferry.rpc.Callers;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.util.Collection;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves the migration stream: routes each lane, by its Hello, to the incoming migration it
 * belongs to. Only migrations registered through {@link #expect} are accepted.
 */
public final class MigrationStreamService {
    private static final Logger log = LoggerFactory.getLogger(MigrationStreamService.class);
    private final ConcurrentMap<String, IncomingMigration> incoming = new ConcurrentHashMap<>();

    public void expect(IncomingMigration migration) {
        if (incoming.putIfAbsent(migration.migrationId(), migration) != null) {
            throw new IllegalStateException("migration " + migration.migrationId() + " is already expected");
        }
    }

    public void forget(IncomingMigration migration) {
        incoming.remove(migration.migrationId(), migration);
    }

    public IncomingMigration find(String migrationId) {
        return incoming.get(migrationId);
    }

    public Collection<IncomingMigration> all() {
        return incoming.values();
    }

    public ServerServiceDefinition definition() {
        return MigrationStreamRpc.SERVICE
                .bind()
                .bidiStreaming("Transfer", SenderFrame.class, ReceiverFrame.class, this::transfer)
                .build();
    }

    private StreamObserver<SenderFrame> transfer(StreamObserver<ReceiverFrame> responses) {
        // Who opened this lane, from its certificate (empty on a plaintext agent).
        Optional<Identity> caller = Callers.current();
        ServerCallStreamObserver<ReceiverFrame> out = (ServerCallStreamObserver<ReceiverFrame>) responses;
        out.disableAutoRequest();
        out.request(1);
        var lane = new StreamObserver<SenderFrame>() {
            private ReceiverLane lane;
            private IncomingMigration session;
            private int laneIndex = -1;
            /** The call was ended with a refusal: whatever the source does next is of no concern. */
            private boolean refused;

            @Override
            public void onNext(SenderFrame frame) {
                if (lane != null) {
                    lane.onFrame(frame);
                    return;
                }
                if (!frame.hasHello()) {
                    refuse("the first frame must be a hello, got " + frame.getBodyCase());
                    return;
                }
                var hello = frame.getHello();
                IncomingMigration m = incoming.get(hello.getMigrationId());
                if (m == null) {
                    refuse("this agent is not expecting migration '" + hello.getMigrationId() + "'");
                    return;
                }
                // Another host of the cluster, even knowing the migration id, must not feed this
                // guest's memory: only the source the prepare named may.
                Optional<String> stranger = Callers.unlessAgent(caller, m.sourceHost(), "migration " + m.migrationId());
                if (stranger.isPresent()) {
                    refuse(stranger.get());
                    return;
                }
                ReceiverLane candidate = new ReceiverLane(m, hello.getLane(), hello.getLaneCount(), out);
                String refusal = m.attach(hello, candidate);
                if (refusal != null) {
                    refuse(refusal);
                    return;
                }
                session = m;
                lane = candidate;
                laneIndex = hello.getLane();
                lane.send(ReceiverFrame.newBuilder()
                        .setHelloAck(HelloAck.newBuilder()
                                .setProtocolVersion(MigrationStreamRpc.PROTOCOL_VERSION)
                                .setLane(hello.getLane())
                                .setDigestScheme(dev.ferry.migration.RegionDigests.SCHEME))
                        .build());
                lane.start();
            }

            private void refuse(String reason) {
                refused = true;
                log.warn("refused a migration lane: {}", reason);
                try {
                    out.onNext(ReceiverFrame.newBuilder()
                            .setAbort(Abort.newBuilder()
                                    .setStep(MigrationStep.MIGRATION_STEP_HANDSHAKE)
                                    .setReason(reason))
                            .build());
                    out.onError(
                            Status.FAILED_PRECONDITION.withDescription(reason).asRuntimeException());
                } catch (RuntimeException e) {
                    // the caller is gone
                }
            }

            @Override
            public void onError(Throwable t) {
                if (session != null) {
                    session.streamLost(laneIndex, Status.fromThrowable(t).toString());
                }
            }

            @Override
            public void onCompleted() {
                if (session != null) {
                    session.streamLost(laneIndex, "source closed the lane");
                    return;
                }
                if (lane == null && !refused) {
                    // A call closed before any hello belongs to no migration, so nothing else ever ends
                    // it: left open, each such call would be held until the connection goes.
                    refuse("the lane closed before its hello");
                }
            }

            /** The call is over, whoever ended it. */
            void closed() {
                if (session != null) {
                    // After this side's own end (a refusal, an abort, the commit's completion) the
                    // migration is over already and this changes nothing.
                    session.streamLost(laneIndex, "gRPC closed the lane's call: a frame it could not read");
                }
            }
        };
        // gRPC ends a call by itself when a frame does not parse ("Application error processing
        // RPC"), and then tells this observer neither onError nor onCompleted: only the close handler
        // hears of it. Without it the migration kept the VM's RAM and name until the idle deadline,
        // and once Ready (where only a lost lane or the commit ends the wait) for good: chaos
        // scenario 13 found it (HostileSenderTest.aFrameThatDoesNotParse...).
        out.setOnCloseHandler(lane::closed);
        return lane;
    }
}
