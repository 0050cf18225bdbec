package dev.ferry.cli;

import dev.ferry.cluster.coordinator.Coordinator;
import dev.ferry.cluster.coordinator.CoordinatorConfig;
import dev.ferry.cluster.policy.FencePolicy;
import dev.ferry.cluster.store.EmbeddedZooKeeper;
import dev.ferry.cluster.store.ZkClients;
import dev.ferry.cluster.store.ZkSecurity;
import dev.ferry.pki.Role;
import dev.ferry.rpc.Endpoint;
import dev.ferry.rpc.RateLimit;
import dev.ferry.rpc.Transport;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(
        name = "coordinator",
        description = {
            "Run a cluster coordinator replica (until SIGTERM or SIGINT).",
            "Replicas elect a leader in ZooKeeper; the leader restarts the VMs of failed hosts, drains hosts "
                    + "and runs every cluster command. --embedded-zk runs a single ZooKeeper server in this process "
                    + "(local clusters)."
        })
final class CoordinatorCommand implements java.util.concurrent.Callable<Integer> {
    @Option(names = "--zk", paramLabel = "CONNECT", description = "The cluster's ZooKeeper (host:port,...).")
    String zk;

    @Option(
            names = "--embedded-zk",
            paramLabel = "DIR",
            description = "Run one ZooKeeper server in this process, data in DIR (instead of --zk).")
    Path embeddedZk;

    @Option(
            names = "--zk-listen",
            paramLabel = "ADDR",
            defaultValue = "127.0.0.1:0",
            description = "Where the embedded ZooKeeper listens (default: ${DEFAULT-VALUE}).")
    String zkListen;

    @Option(
            names = "--cluster-name",
            paramLabel = "NAME",
            defaultValue = "default",
            description = "The cluster's name in ZooKeeper (default: ${DEFAULT-VALUE}).")
    String clusterName;

    @Option(names = "--listen", required = true, paramLabel = "ADDR", description = "HOST:PORT of the coordinator API.")
    String listen;

    @Option(
            names = "--advertise",
            paramLabel = "ADDR",
            description = "HOST:PORT clients and agents reach this replica at, registered in ZooKeeper (default: the "
                    + "--listen address with the bound port). Required when --listen is a wildcard (0.0.0.0); never "
                    + "loopback unless --single-machine.")
    String advertise;

    @Option(
            names = "--single-machine",
            description = "Every daemon of this cluster runs on this machine (as `ferry cluster up` starts them): "
                    + "allows a loopback --listen/--advertise address.")
    boolean singleMachine;

    @Option(
            names = "--endpoint-file",
            paramLabel = "FILE",
            description = "Once serving, write 'coordinator HOST:PORT' (and 'zookeeper HOST:PORT' when embedded) here.")
    Path endpointFile;

    @Option(
            names = "--agent-session-timeout-ms",
            defaultValue = "10000",
            description =
                    "The agents' session timeout, from which the default failover margin follows (default: ${DEFAULT-VALUE}).")
    long agentSessionTimeoutMs;

    @Option(
            names = "--failover-margin-ms",
            description = "Wait after a host's session expired before restarting its VMs "
                    + "(default: a fifth of the agents' session timeout, at least 500).")
    Long failoverMarginMs;

    @Option(
            names = "--intent-retention-minutes",
            defaultValue = "60",
            description =
                    "How long finished intents stay, so that a retried request finds its outcome (default: ${DEFAULT-VALUE}).")
    long intentRetentionMinutes;

    @Option(
            names = "--reports-kept",
            defaultValue = "1000",
            paramLabel = "N",
            description =
                    "Finished migrations whose records (`ferry report`) the cluster keeps in ZooKeeper, the oldest"
                            + " dropped first (default: ${DEFAULT-VALUE}).")
    int reportsKept;

    @Option(
            names = "--report-retention-days",
            defaultValue = "30",
            paramLabel = "DAYS",
            description = "Days the cluster keeps a finished migration's record (default: ${DEFAULT-VALUE}).")
    int reportRetentionDays;

    @Option(
            names = "--max-concurrent-restarts",
            defaultValue = "4",
            paramLabel = "N",
            description =
                    "Restarts of failed hosts' VMs the leader carries out at once, cluster-wide; the others wait, "
                            + "highest restart priority first (default: ${DEFAULT-VALUE}).")
    int maxConcurrentRestarts;

    @Option(
            names = "--restart-reset-after",
            defaultValue = "10m",
            paramLabel = "DURATION",
            converter = DurationConverter.class,
            description = "A VM that has run this long without a restart has its restart attempts counted from zero "
                    + "again: 500ms, 90s, 10m, 1h (default: ${DEFAULT-VALUE}).")
    Duration restartResetAfter;

    @Option(
            names = "--change-rate",
            defaultValue = "20",
            paramLabel = "PER_SECOND",
            description = "Requests that change the cluster (create, start, stop, delete, migrate, cancel, drain) each "
                    + "operator identity may make per second once its burst is spent; more are refused with "
                    + "RESOURCE_EXHAUSTED and write nothing (default: ${DEFAULT-VALUE}).")
    double changeRate;

    @Option(
            names = "--repair-acls",
            description = "Set the cluster's ZooKeeper ACLs on every node of its tree at start, when some are "
                    + "not the cluster's (a tree made by an --insecure run, or created by someone else before the "
                    + "cluster first started); without it such a tree stops the start, naming the nodes.")
    boolean repairAcls;

    @Option(
            names = "--change-burst",
            defaultValue = "100",
            paramLabel = "N",
            description = "Requests that change the cluster each operator identity may make at once "
                    + "(default: ${DEFAULT-VALUE}).")
    int changeBurst;

    /** 500ms, 90s, 10m, 1h, 30d (or ISO-8601, PT10M). */
    static final class DurationConverter implements CommandLine.ITypeConverter<Duration> {
        @Override
        public Duration convert(String text) {
            java.util.regex.Matcher m =
                    java.util.regex.Pattern.compile("(\\d+)(ms|s|m|h|d)").matcher(text.trim());
            if (m.matches()) {
                long n = Long.parseLong(m.group(1));
                return switch (m.group(2)) {
                    case "ms" -> Duration.ofMillis(n);
                    case "s" -> Duration.ofSeconds(n);
                    case "m" -> Duration.ofMinutes(n);
                    case "h" -> Duration.ofHours(n);
                    default -> Duration.ofDays(n);
                };
            }
            try {
                return Duration.parse(text.trim());
            } catch (java.time.format.DateTimeParseException e) {
                throw new CommandLine.TypeConversionException(
                        "'" + text + "' is not a duration (500ms, 90s, 10m, 1h, 30d)");
            }
        }
    }

    @Option(
            names = "--metrics-listen",
            paramLabel = "ADDR",
            description = "HOST:PORT to serve Prometheus metrics on, plain HTTP (GET /metrics, GET /healthz); port 0 "
                    + "picks one. Off when not given. Bind a management address: it carries VM and host names and "
                    + "asks for no credentials.")
    String metricsListen;

    @picocli.CommandLine.Mixin
    dev.ferry.cli.config.ConfigOption config = new dev.ferry.cli.config.ConfigOption();

    @picocli.CommandLine.Mixin
    LogFormatOption logFormat = new LogFormatOption();

    @picocli.CommandLine.Mixin
    TlsOptions tls;

    @Override
    public Integer call() throws Exception {
        logFormat.apply((advertise != null ? advertise : listen));
        config.logSource("coordinator");
        if ((zk == null) == (embeddedZk == null)) {
            throw new CliException("pass exactly one of --zk CONNECT and --embedded-zk DIR", 2);
        }
        if (maxConcurrentRestarts < 1) {
            throw new CliException("--max-concurrent-restarts must be at least 1", 2);
        }
        if (restartResetAfter.isNegative() || restartResetAfter.isZero()) {
            throw new CliException("--restart-reset-after must be positive", 2);
        }
        if (reportsKept < 1 || reportRetentionDays < 1) {
            throw new CliException("--reports-kept and --report-retention-days must be at least 1", 2);
        }
        java.net.InetSocketAddress metricsAt = metricsListen == null ? null : MetricsListen.parse(metricsListen);
        // Checked before anything starts: the replica's endpoint goes into ZooKeeper for CLIs and agents to dial.
        Endpoint advertised = AdvertisedEndpoint.choose("coordinator", listen, advertise, singleMachine);
        // Checked before anything starts: a coordinator's certificate, or the explicit --insecure.
        Transport transport = tls.daemon("coordinator", Role.COORDINATOR, null);
        ZkSecurity zkSecurity = tls.zooKeeper("coordinator");
        EmbeddedZooKeeper server = null;
        String connect = zk;
        if (embeddedZk != null) {
            Endpoint at = Endpoint.parse(zkListen);
            if (!(at instanceof Endpoint.Tcp tcp)) {
                throw new CliException("--zk-listen must be HOST:PORT", 2);
            }
            // Secure unless --insecure: the embedded server presents this replica's certificate (a
            // local cluster's names 127.0.0.1, which clients check) and serves TLS only.
            server = new EmbeddedZooKeeper(embeddedZk.toAbsolutePath(), tcp.socketAddress(), zkSecurity).start();
            connect = server.connectString();
        }
        Duration margin = failoverMarginMs != null
                ? Duration.ofMillis(failoverMarginMs)
                : FencePolicy.defaultFailoverMargin(Duration.ofMillis(agentSessionTimeoutMs));
        CoordinatorConfig config = CoordinatorConfig.of(
                ZkClients.of(connect, clusterName, Duration.ofSeconds(10), zkSecurity), Endpoint.parse(listen), margin);
        config = config.withTransport(transport);
        if (advertised != null) {
            config = config.withAdvertise(advertised);
        }
        config = config.withIntentRetention(Duration.ofMinutes(Math.max(1, intentRetentionMinutes)));
        config = config.withMaxConcurrentRestarts(maxConcurrentRestarts).withRestartResetAfter(restartResetAfter);
        config = config.withMetricsListen(metricsAt);
        config = config.withReports(new dev.ferry.cluster.coordinator.MigrationReports.Retention(
                reportsKept, Duration.ofDays(reportRetentionDays)));
        try {
            config = config.withChangeLimit(new RateLimit(changeRate, changeBurst))
                    .withRepairAcls(repairAcls);
        } catch (IllegalArgumentException e) {
            throw new CliException("--change-rate/--change-burst: " + e.getMessage(), 2);
        }
        Coordinator coordinator = new Coordinator(config);
        CountDownLatch stopped = new CountDownLatch(1);
        EmbeddedZooKeeper embedded = server;
        Runtime.getRuntime()
                .addShutdownHook(new Thread(
                        () -> {
                            coordinator.close();
                            if (embedded != null) {
                                embedded.close();
                            }
                            stopped.countDown();
                        },
                        "ferry-coordinator-shutdown"));
        try {
            coordinator.start();
        } catch (java.io.IOException e) {
            throw new CliException("the coordinator cannot start: " + e.getMessage());
        }
        if (endpointFile != null) {
            Path f = endpointFile.toAbsolutePath();
            Path tmp = f.resolveSibling(f.getFileName() + ".tmp");
            String text = "coordinator " + coordinator.endpoint() + "\n" + "zookeeper " + connect + "\n"
                    + (coordinator.metricsEndpoint() == null ? "" : "metrics " + coordinator.metricsEndpoint() + "\n");
            Files.writeString(tmp, text, StandardCharsets.UTF_8);
            Files.move(tmp, f, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        }
        stopped.await();
        return 0;
    }
}
