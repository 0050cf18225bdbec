package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.proto.coordinator.OutageAnswer;
import dev.ferry.proto.coordinator.OutageQuestion;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicBoolean;
import org.junit.jupiter.api.Test;

/** A replica's answers to agents during a loss of ZooKeeper, and the restarts they hold back. */
class OutagePromisesTest {
    private static final Duration PROMISE = Duration.ofSeconds(2);
    private static final Duration HOLD = Duration.ofMinutes(2);
    private static final OutageQuestion Q =
            OutageQuestion.newBuilder().setHostId("h1").build();

    @Test
    void aReplicaInContactPromisesNothingAndHoldsNoRestartBack() {
        OutagePromises p = new OutagePromises("r1", PROMISE, HOLD, Duration.ZERO, () -> true);
        OutageAnswer a = p.attest(Q);
        assertTrue(a.getInContact());
        assertEquals(0, a.getPromiseMs());
        assertEquals("r1", a.getReplica());
        long lostLongAfterStart = System.nanoTime();
        assertTrue(p.restartsAllowedAt(lostLongAfterStart) - System.nanoTime() <= 0);
    }

    @Test
    void aReplicaWithoutZooKeeperPromisesAndKeepsThePromiseAfterItIsBack() {
        AtomicBoolean connected = new AtomicBoolean(false);
        OutagePromises p = new OutagePromises("r1", PROMISE, HOLD, Duration.ZERO, connected::get);
        long before = System.nanoTime();
        OutageAnswer a = p.attest(Q);
        assertFalse(a.getInContact());
        assertEquals(PROMISE.toMillis(), a.getPromiseMs());
        connected.set(true);
        long allowed = p.restartsAllowedAt(System.nanoTime());
        assertTrue(allowed - (before + PROMISE.toNanos()) >= 0, "no restart before the promise ends");
    }

    @Test
    void withoutZooKeeperAReplicaHoldsRestartsBackUnasked() {
        AtomicBoolean connected = new AtomicBoolean(false);
        OutagePromises p = new OutagePromises("r1", PROMISE, HOLD, Duration.ZERO, connected::get);
        long before = System.nanoTime();
        p.tick();
        assertTrue(p.restartsAllowedAt(System.nanoTime()) - (before + PROMISE.toNanos()) >= 0);
    }

    @Test
    void aReplicaThatJustStartedHoldsBackRestartsOfHostsLostBeforeAgentsCouldKnowIt() {
        Duration window = Duration.ofSeconds(20);
        OutagePromises p = new OutagePromises("r1", PROMISE, HOLD, window, () -> true);
        long now = System.nanoTime();
        assertTrue(
                p.restartsAllowedAt(now)
                                - (now + HOLD.toNanos() - Duration.ofSeconds(1).toNanos())
                        > 0,
                "a host lost right after this replica started may be riding out an outage unaware of it");
        long lostLater = now + window.toNanos() + 1;
        assertTrue(p.restartsAllowedAt(lostLater) - lostLater <= 0, "hosts lost later are restarted as usual");
    }

    @Test
    void asARestartGateAPromiseHoldsTheRestartBackWithTheReasonUntilItEnds() {
        AtomicBoolean connected = new AtomicBoolean(false);
        OutagePromises p = new OutagePromises("r1", Duration.ofMillis(300), HOLD, Duration.ZERO, connected::get);
        RestartGate gate = p.gate();
        long now = System.nanoTime();
        assertTrue(gate.check("h1", "v", now) instanceof RestartGate.Now, "nothing promised yet");
        p.attest(Q);
        connected.set(true);
        RestartGate.Verdict held = gate.check("h1", "v", System.nanoTime());
        assertTrue(held instanceof RestartGate.NotBefore, held.toString());
        assertTrue(((RestartGate.NotBefore) held).reason().contains("promised"), held.toString());
        long after = ((RestartGate.NotBefore) held).nanoTime() + 1;
        assertTrue(gate.check("h1", "v", after) instanceof RestartGate.Now, "the promise has ended");
    }
}
