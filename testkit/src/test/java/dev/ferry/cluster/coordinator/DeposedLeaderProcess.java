package dev.ferry.cluster.coordinator;

import dev.ferry.agent.client.AgentCallException;
import dev.ferry.cluster.store.ClusterPaths;
import dev.ferry.cluster.store.ClusterStore;
import dev.ferry.proto.agent.VmRequest;
import dev.ferry.proto.cluster.HostRecord;
import dev.ferry.proto.cluster.IntentKind;
import dev.ferry.proto.vm.VmStatus;
import dev.ferry.testkit.CoordinatorProcess;
import dev.ferry.testkit.ForwardingAgentActions;
import dev.ferry.testkit.TestCluster;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.curator.framework.api.transaction.CuratorOp;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;

/**
 * A coordinator replica (in a process of its own, as {@code CoordinatorProcess}) that will be
 * frozen with SIGSTOP in the middle of a stop, and thawed once another replica has taken over:
 * the deposed leader of {@link DeposedLeaderTest}. Extra arguments: held-file, release-file,
 * result-file.
 *
 * <p>Its first StopVm does not leave at once: the replica prepares a ZooKeeper write under its
 * term's guard (as a thread that has passed every local check and is about to send), writes
 * held-file and waits for release-file. The test freezes it there, lets its session expire and a
 * new leader act, creates release-file and thaws it. Then the late order and the late write go
 * out as they would from a thread that woke before the replica noticed it was deposed (on a
 * thread of their own, past the term's interruption), and what the agent and ZooKeeper answered
 * goes to result-file, one line each.
 */
public final class DeposedLeaderProcess {
    private DeposedLeaderProcess() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> a = CoordinatorProcess.arguments(args);
        Path held = Path.of(a.get("held-file"));
        Path release = Path.of(a.get("release-file"));
        Path result = Path.of(a.get("result-file"));
        AtomicReference<Coordinator> self = new AtomicReference<>();
        AgentActions real = TestCluster.grpcAgents();
        AgentActions late = new ForwardingAgentActions(real) {
            private final AtomicBoolean first = new AtomicBoolean(true);

            @Override
            public VmStatus stopVm(HostRecord host, VmRequest request) {
                if (!first.getAndSet(false)) {
                    return real.stopVm(host, request);
                }
                try {
                    return stopLate(self.get(), real, host, request, held, release, result);
                } catch (AgentCallException e) {
                    throw e;
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        };
        Coordinator c = new Coordinator(CoordinatorProcess.config(a), late);
        self.set(c);
        CoordinatorProcess.serve(c, a);
    }

    private static VmStatus stopLate(
            Coordinator c, AgentActions real, HostRecord host, VmRequest request, Path held, Path release, Path result)
            throws Exception {
        Term term = c.term();
        ClusterStore store = term.store;
        // A write that has passed every local check of the term and is about to be sent: a new
        // decision (nothing the new leader does conflicts with it, so only the term's checks stand
        // in its way).
        String id = "late-decision-of-term-" + term.guard.term();
        List<CuratorOp> lateWrite = term.guard.guarded(List.of(store.create(
                ClusterPaths.intent(id),
                Intents.intent(IntentKind.INTENT_KIND_STOP, id)
                        .setVm(request.getName())
                        .build(),
                CreateMode.PERSISTENT)));
        Files.writeString(held, "term " + request.getLeaderTerm());
        // Frozen here by the test. Once thawed, the term may be closed and this thread interrupted:
        // the late calls go out regardless, as from a thread that woke before anything noticed.
        while (!Files.exists(release)) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                // keep waiting: the test decides when this thread "wakes"
            }
        }
        CompletableFuture<String> agent = new CompletableFuture<>();
        CompletableFuture<String> zookeeper = new CompletableFuture<>();
        Thread.ofPlatform().start(() -> {
            try {
                real.stopVm(host, request);
                agent.complete("agent accepted");
            } catch (AgentCallException e) {
                agent.complete("agent " + e.code() + " " + e.getMessage());
            }
            zookeeper.complete(commitLate(store, lateWrite));
        });
        String lines = agent.join() + "\n" + zookeeper.join() + "\n";
        Path tmp = result.resolveSibling(result.getFileName() + ".tmp");
        Files.writeString(tmp, lines);
        Files.move(tmp, result, StandardCopyOption.ATOMIC_MOVE);
        throw new AgentCallException(io.grpc.Status.Code.UNAVAILABLE, "deposed: " + lines.trim(), null);
    }

    /** Sends the late write until ZooKeeper answers it (a reconnection may come first). */
    private static String commitLate(ClusterStore store, List<CuratorOp> ops) {
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (true) {
            try {
                store.commit(ops);
                return "zookeeper accepted";
            } catch (KeeperException e) {
                if (!ClusterStore.outcomeUnknown(e) || System.nanoTime() > deadline) {
                    return "zookeeper refused " + e.code() + " at op " + ClusterStore.failedOp(e);
                }
            } catch (Exception e) {
                if (System.nanoTime() > deadline) {
                    return "zookeeper unanswered " + e;
                }
            }
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
