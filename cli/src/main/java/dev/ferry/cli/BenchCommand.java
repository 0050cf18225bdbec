package dev.ferry.cli;

import dev.ferry.cli.bench.TransferBench;
import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(
        name = "bench",
        description = {
            "Measure migration throughput against raw TCP, and the agents' memory.",
            "Starts its own local cluster; results go to stdout (and --json). Subcommands: qemu (Ferry "
                    + "against QEMU's own migration), failover (kill -9 of a host to its VMs running elsewhere), "
                    + "coordinator (scale), verify (what --verify adds to the pause)."
        },
        subcommands = {
            BenchCommand.RawSink.class,
            QemuBenchCommand.class,
            BenchCommand.Failover.class,
            BenchCommand.CoordinatorScale.class,
            BenchCommand.Verify.class
        })
final class BenchCommand implements java.util.concurrent.Callable<Integer> {
    @Option(
            names = "--size",
            defaultValue = "1G",
            description = "Guest RAM per throughput run (default: ${DEFAULT-VALUE}).")
    String size;

    @Option(
            names = "--patterns",
            split = ",",
            defaultValue = "random,compressible,sparse",
            description = "Memory contents to measure (default: ${DEFAULT-VALUE}).")
    List<String> patterns;

    @Option(
            names = "--streams",
            split = ",",
            defaultValue = "1,2",
            description = "Stream counts (default: ${DEFAULT-VALUE}).")
    List<Integer> streams;

    @Option(
            names = "--repeat",
            defaultValue = "3",
            description = "Runs per case; the median is reported (default: ${DEFAULT-VALUE}).")
    int repeat;

    @Option(
            names = "--memory-size",
            defaultValue = "4G",
            description = "Guest RAM of the memory-bound run (0 skips it) (default: ${DEFAULT-VALUE}).")
    String memorySize;

    @Option(
            names = "--link-rate",
            defaultValue = "0",
            paramLabel = "RATE",
            description = {
                "Emulate a link of this speed (e.g. 1G/s, about 8.6 Gbit/s; 120M/s, about 1 Gbit/s): the raw TCP sender "
                        + "is paced to it and Ferry runs with --max-bandwidth RATE; both count bytes on the wire. "
                        + "0 (default): loopback as fast as it goes."
            })
    String linkRate;

    @Option(names = "--json", description = "Print the results as JSON.")
    boolean json;

    @Override
    public Integer call() throws Exception {
        TransferBench.Settings s = new TransferBench.Settings(
                Sizes.parseSize(size),
                patterns.stream().map(VmCommand.Create::pattern).toList(),
                streams,
                Math.max(1, repeat),
                Sizes.parseSize(memorySize),
                Sizes.parseRate(linkRate));
        TransferBench.Report r = new TransferBench(s, json ? System.err : System.out).run();
        if (json) {
            System.out.println(Json.write(r.toJson()));
        } else {
            System.out.println();
            System.out.println(r.table());
        }
        return 0;
    }

    @Command(
            name = "verify",
            description = {
                "What --verify adds to the pause: two standalone sim agents, one guest that keeps writing, migrated "
                        + "back and forth with and without --verify in turns; p50/p90/max of the pause and of the "
                        + "verification itself."
            })
    static final class Verify implements java.util.concurrent.Callable<Integer> {
        @Option(names = "--size", defaultValue = "512M", description = "Guest RAM (default: ${DEFAULT-VALUE}).")
        String size;

        @Option(
                names = "--repeat",
                defaultValue = "5",
                description = "Migrations with and without --verify each (default: ${DEFAULT-VALUE}).")
        int repeat;

        @Option(
                names = "--dirty-rate",
                defaultValue = "8M",
                paramLabel = "RATE",
                description = "Bytes per second the guest writes (default: ${DEFAULT-VALUE}).")
        String dirtyRate;

        @Option(
                names = "--working-set",
                defaultValue = "64M",
                description = "The part of RAM the guest writes (default: ${DEFAULT-VALUE}).")
        String workingSet;

        @Override
        public Integer call() throws Exception {
            dev.ferry.cli.bench.VerifyBench.Settings s = new dev.ferry.cli.bench.VerifyBench.Settings(
                    Sizes.parseSize(size),
                    Math.max(1, repeat),
                    Sizes.parseRate(dirtyRate),
                    Sizes.parseSize(workingSet),
                    2);
            List<dev.ferry.cli.bench.VerifyBench.Run> runs = new dev.ferry.cli.bench.VerifyBench(s, System.out).run();
            System.out.println();
            System.out.print(dev.ferry.cli.bench.VerifyBench.table(s, runs));
            return 0;
        }
    }

    @Command(
            name = "failover",
            description = {
                "Failover time: kill -9 of a host's agent (its VMs die with it) until every one of its VMs runs "
                        + "on another host; repeated per ZooKeeper session timeout (median and max)."
            })
    static final class Failover implements java.util.concurrent.Callable<Integer> {
        @Option(
                names = "--session-timeouts",
                defaultValue = "4000,10000",
                description = "Agents' session timeouts to measure, ms (default: ${DEFAULT-VALUE}).")
        String sessionTimeouts;

        @Option(
                names = "--runs",
                defaultValue = "5",
                description = "Kills per session timeout (default: ${DEFAULT-VALUE}).")
        int runs;

        @Option(
                names = "--vms",
                defaultValue = "4",
                description = "VMs on the killed host (default: ${DEFAULT-VALUE}).")
        int vms;

        @Option(
                names = "--vm-memory",
                defaultValue = "64M",
                description = "RAM of each VM (default: ${DEFAULT-VALUE}).")
        String vmMemory;

        @Option(names = "--json", description = "Print the results as JSON.")
        boolean json;

        @Override
        public Integer call() throws Exception {
            dev.ferry.cli.bench.FailoverBench.Report r = new dev.ferry.cli.bench.FailoverBench(
                            new dev.ferry.cli.bench.FailoverBench.Settings(
                                    java.util.Arrays.stream(sessionTimeouts.split(","))
                                            .map(String::trim)
                                            .map(Long::parseLong)
                                            .toList(),
                                    Math.max(1, runs),
                                    Math.max(1, vms),
                                    Sizes.parseSize(vmMemory)),
                            json ? System.err : System.out)
                    .run();
            System.out.println(json ? Json.write(r.toJson()) : "\n" + r.table());
            return 0;
        }
    }

    @Command(
            name = "coordinator",
            description = {
                "Coordinator scale: a real ZooKeeper in this process, simulated agents (one session each) and "
                        + "VMs; time from a host's loss to all its restart decisions written, ZooKeeper writes."
            })
    static final class CoordinatorScale implements java.util.concurrent.Callable<Integer> {
        @Option(names = "--hosts", defaultValue = "1000", description = "Simulated hosts (default: ${DEFAULT-VALUE}).")
        int hosts;

        @Option(names = "--vms", defaultValue = "20000", description = "VMs (default: ${DEFAULT-VALUE}).")
        int vms;

        @Option(
                names = "--failures",
                defaultValue = "5",
                description = "Hosts killed, one at a time (default: ${DEFAULT-VALUE}).")
        int failures;

        @Option(names = "--json", description = "Print the results as JSON.")
        boolean json;

        @Override
        public Integer call() throws Exception {
            dev.ferry.cluster.bench.CoordinatorScaleBench.Report r = new dev.ferry.cluster.bench.CoordinatorScaleBench(
                            new dev.ferry.cluster.bench.CoordinatorScaleBench.Settings(hosts, vms, failures, 30_000),
                            json ? System.err : System.out)
                    .run();
            System.out.println(json ? Json.write(r.toJson()) : "\n" + r.table());
            return 0;
        }
    }

    @Command(name = "raw-sink", hidden = true, description = "Raw TCP receiver of the benchmark's baseline.")
    static final class RawSink implements java.util.concurrent.Callable<Integer> {
        @Option(names = "--ram-dir", required = true)
        Path ramDir;

        @Option(names = "--endpoint-file", required = true)
        Path endpointFile;

        @Override
        public Integer call() throws Exception {
            TransferBench.serveRawSink(ramDir, endpointFile);
            return 0;
        }
    }
}
