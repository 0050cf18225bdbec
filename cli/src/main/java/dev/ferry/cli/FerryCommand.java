package dev.ferry.cli;

import picocli.CommandLine.Command;

// INHERIT: every subcommand takes --help (and --version), which the usage-error hint tells users to try.
@Command(
        name = "ferry",
        scope = picocli.CommandLine.ScopeType.INHERIT,
        mixinStandardHelpOptions = true,
        versionProvider = FerryCommand.Version.class,
        description = "Live migration and high availability for virtual machines.",
        subcommands = {
            AgentCommand.class,
            CoordinatorCommand.class,
            ClusterCommand.class,
            HostCommand.class,
            VmCommand.class,
            MigrateCommand.class,
            ReportCommand.class,
            CancelCommand.class,
            DemoCommand.class,
            BenchCommand.class,
            PkiCommand.class,
            HealthCommand.class,
        },
        footer = {
            "",
            "Commands that talk to a cluster find it with --cluster DIR (or FERRY_CLUSTER), or with --zk "
                    + "CONNECT (and --cluster-name NAME, or FERRY_CLUSTER_NAME) for a cluster anywhere.",
            "Exit status: 0 on success, 1 when the operation failed, 2 for a usage error."
        })
public final class FerryCommand implements Runnable {
    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(new picocli.CommandLine(this), "missing command");
    }

    static final class Version implements picocli.CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"ferry " + version() + " (Java " + Runtime.version() + ")"};
        }

        /**
         * The build's {@code git describe} (from the jar's manifest); "dev" when running from
         * classes, or from a build outside a git work tree (the manifest then holds the
         * placeholder Maven could not fill).
         */
        static String version() {
            String v = FerryCommand.class.getPackage().getImplementationVersion();
            return v == null || v.isBlank() || v.startsWith("${") ? "dev" : v;
        }
    }
}
