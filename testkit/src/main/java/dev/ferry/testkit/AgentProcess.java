package dev.ferry.testkit;

import dev.ferry.agent.AgentConfig;
import dev.ferry.agent.cluster.ClusterAgent;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.hypervisor.sim.SimDriver;
import dev.ferry.migration.precopy.PreCopySender;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.Transport;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

/**
 * A cluster agent in a process of its own (sim driver, guests recorded in the run log), so that a
 * test can kill -9 a whole host: the agent and, with the sim driver, its guests with it.
 * Arguments: key=value pairs (host, zk, cluster, session-ms, data, ram, endpoint-file, run-log,
 * memory, vcpus).
 */
public final class AgentProcess {
    private AgentProcess() {}

    public static void main(String[] args) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            a.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        String host = a.get("host");
        PreCopySender.Timeouts t = PreCopySender.Timeouts.defaults().scaled(0.25);
        AgentConfig config = new AgentConfig(
                host,
                Endpoint.parse("127.0.0.1:0"),
                Path.of(a.get("data")),
                Path.of(a.get("ram")),
                null,
                Transport.plaintext(),
                t,
                Duration.ofSeconds(10));
        ZkClients zk =
                ZkClients.of(a.get("zk"), a.get("cluster"), Duration.ofMillis(Long.parseLong(a.get("session-ms"))));
        RunLog log = new RunLog(Path.of(a.get("run-log")));
        ClusterAgent agent = ClusterAgent.start(
                config,
                new RecordingDriver(new SimDriver(), host, log),
                zk,
                new ClusterAgent.Capacity(Long.parseLong(a.get("memory")), Integer.parseInt(a.get("vcpus")), Map.of()),
                Duration.ofSeconds(1));
        if (!agent.member().awaitMember(Duration.ofSeconds(30))) {
            System.err.println("agent " + host + " could not join the cluster");
            System.exit(3);
        }
        Path endpointFile = Path.of(a.get("endpoint-file"));
        Files.writeString(
                endpointFile.resolveSibling(endpointFile.getFileName() + ".tmp"),
                agent.agent().endpoint().toString());
        Files.move(endpointFile.resolveSibling(endpointFile.getFileName() + ".tmp"), endpointFile);
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            agent.close();
            stop.countDown();
        }));
        stop.await();
    }
}
