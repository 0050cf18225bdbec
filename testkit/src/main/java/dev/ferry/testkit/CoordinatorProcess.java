package dev.ferry.testkit;

import dev.ferry.cluster.coordinator.AgentActions;
import dev.ferry.cluster.coordinator.Coordinator;
import dev.ferry.cluster.coordinator.CoordinatorConfig;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.rpc.Endpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

/**
 * A coordinator replica in a process of its own, so that a test can kill -9 the leader (its
 * session is not closed: it lingers until ZooKeeper expires it, as in a real crash). Arguments:
 * key=value (zk, cluster, session-ms, margin-ms, endpoint-file, hold-restarts-file). With
 * hold-restarts-file, a restart's CreateVm never reaches its agent: the replica writes that file and
 * hangs there, so the test can kill it between its decision and the agent call.
 */
public final class CoordinatorProcess {
    private CoordinatorProcess() {}

    /** The key=value arguments. */
    public static Map<String, String> arguments(String[] args) {
        Map<String, String> a = new HashMap<>();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            a.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        return a;
    }

    /** The replica's settings from its arguments (zk, cluster, session-ms, margin-ms). */
    public static CoordinatorConfig config(Map<String, String> a) {
        return CoordinatorConfig.of(
                        ZkClients.of(
                                a.get("zk"), a.get("cluster"), Duration.ofMillis(Long.parseLong(a.get("session-ms")))),
                        Endpoint.parse("127.0.0.1:0"),
                        Duration.ofMillis(Long.parseLong(a.get("margin-ms"))))
                .withReconcileInterval(Duration.ofMillis(500));
    }

    /** Starts {@code c}, writes its endpoint to endpoint-file and serves until the process is told to stop. */
    public static void serve(Coordinator c, Map<String, String> a) throws Exception {
        c.start();
        Path endpointFile = Path.of(a.get("endpoint-file"));
        Path tmp = endpointFile.resolveSibling(endpointFile.getFileName() + ".tmp");
        Files.writeString(tmp, c.endpoint().toString());
        Files.move(tmp, endpointFile);
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            c.close();
            stop.countDown();
        }));
        stop.await();
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = arguments(args);
        CoordinatorConfig config = config(a);
        AgentActions agents = TestCluster.grpcAgents();
        if (a.containsKey("hold-restarts-file")) {
            GatedAgentActions gated = new GatedAgentActions(agents);
            Path held = Path.of(a.get("hold-restarts-file"));
            gated.hold(req -> {
                if (!req.getRequestId().startsWith("restart.")) {
                    return false;
                }
                try {
                    Files.writeString(held, req.getSpec().getName() + " " + req.getEpoch());
                } catch (java.io.IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
                return true;
            });
            agents = gated;
        }
        serve(new Coordinator(config, agents), a);
    }
}
