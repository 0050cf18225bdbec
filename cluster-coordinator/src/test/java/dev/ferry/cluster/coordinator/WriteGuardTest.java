package dev.ferry.cluster.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.proto.cluster.Maintenance;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.CreateMode;
import org.junit.jupiter.api.Test;

/** Leader terms in ZooKeeper: allocated once each, growing, and every write of an old term refused. */
class WriteGuardTest {
    @Test
    void termsGrowWithEveryLeaderAndNoTwoReplicasEverShareOne() throws Exception {
        try (ZkFixture zk = new ZkFixture()) {
            ClusterStore a = zk.store();
            ClusterStore b = zk.store();
            String latchA = ZkFixture.latchNode(a);
            String latchB = ZkFixture.latchNode(b);
            assertEquals(1, WriteGuard.takeOffice(a, "a", latchA, 0).term());
            assertEquals(2, WriteGuard.takeOffice(b, "b", latchB, 0).term());
            assertEquals(3, WriteGuard.takeOffice(a, "a", latchA, 0).term());

            // Replicas racing to take office (as a buggy election might let them) still get one term each.
            List<Future<Long>> raced = new ArrayList<>();
            try (ExecutorService threads =
                    Executors.newThreadPerTaskExecutor(Thread.ofPlatform().factory())) {
                for (int k = 0; k < 4; k++) {
                    ClusterStore s = k % 2 == 0 ? a : b;
                    String latch = k % 2 == 0 ? latchA : latchB;
                    raced.add(threads.submit(
                            () -> WriteGuard.takeOffice(s, "r", latch, 0).term()));
                }
                Set<Long> terms = new HashSet<>();
                for (Future<Long> f : raced) {
                    terms.add(f.get(30, TimeUnit.SECONDS));
                }
                assertEquals(Set.of(4L, 5L, 6L, 7L), terms);
            }
        }
    }

    @Test
    void aDeposedLeadersWriteIsRefusedByZooKeeperEvenWhileItsLatchNodeStillExists() throws Exception {
        try (ZkFixture zk = new ZkFixture()) {
            ClusterStore a = zk.store();
            ClusterStore b = zk.store();
            WriteGuard old = WriteGuard.takeOffice(a, "a", ZkFixture.latchNode(a), 0);
            WriteGuard next = WriteGuard.takeOffice(b, "b", ZkFixture.latchNode(b), 0);

            NotLeaderException refused = assertThrows(
                    NotLeaderException.class,
                    () -> old.write(
                            List.of(a.create("/late", Maintenance.getDefaultInstance(), CreateMode.PERSISTENT))));
            assertTrue(refused.getMessage().contains("term 1 was superseded"), refused.getMessage());
            assertTrue(old.closed());
            assertTrue(a.client().checkExists().forPath("/late") == null, "the late write did not land");
            next.write(List.of(b.create("/mine", Maintenance.getDefaultInstance(), CreateMode.PERSISTENT)));
            assertTrue(b.client().checkExists().forPath("/mine") != null);
        }
    }

    @Test
    void aReplicaWhoseLatchNodeWentCanNeitherWriteNorTakeATerm() throws Exception {
        try (ZkFixture zk = new ZkFixture()) {
            ClusterStore a = zk.store();
            String latch = ZkFixture.latchNode(a);
            WriteGuard guard = WriteGuard.takeOffice(a, "a", latch, 0);
            a.client().delete().forPath(latch); // its session expired, as far as ZooKeeper is concerned

            NotLeaderException refused = assertThrows(
                    NotLeaderException.class,
                    () -> guard.write(
                            List.of(a.create("/late", Maintenance.getDefaultInstance(), CreateMode.PERSISTENT))));
            assertTrue(refused.getMessage().contains("latch node is gone"), refused.getMessage());
            assertThrows(NotLeaderException.class, () -> WriteGuard.takeOffice(a, "a", latch, 0));
            assertEquals(1, a.leaderTerm().orElseThrow().value().getTerm(), "no term was taken");
        }
    }
}
