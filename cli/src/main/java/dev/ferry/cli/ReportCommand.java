package dev.ferry.cli;

import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.proto.coordinator.MigrationReport;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
        name = "report",
        description = {
            "A migration's record, after it ended (or while it runs): its settings, every round's pages, bytes,"
                    + " bandwidth, dirty rate and remaining bytes, the limit changes, the pause by step and the outcome.",
            "ID|VM: a migration's id, or a VM (its running or latest migration). The cluster keeps a finished"
                    + " migration's record in ZooKeeper (the last 1000, 30 days: `ferry coordinator --reports-kept/"
                    + "--report-retention-days`); the source agent keeps its own copy and the running ones.",
            "--html FILE writes a page with charts that opens anywhere (no script, nothing loaded from a network)."
        })
final class ReportCommand implements java.util.concurrent.Callable<Integer> {
    @Mixin
    ClusterOption cluster;

    @Parameters(index = "0", paramLabel = "ID|VM")
    String which;

    @Option(names = "--html", paramLabel = "FILE", description = "Also write the report as an HTML page with charts.")
    Path html;

    @Option(names = "--json", description = "Print JSON instead of text.")
    boolean json;

    @Override
    public Integer call() {
        MigrationReport rep;
        try (CoordinatorClient c = cluster.client()) {
            rep = c.report(which);
        }
        if (json) {
            System.out.println(Json.write(ReportView.json(rep)));
        } else {
            ReportView.printText(rep, System.out);
        }
        if (html != null) {
            Path target = html.toAbsolutePath();
            try {
                Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
                Files.writeString(tmp, MigrationReportHtml.render(rep), StandardCharsets.UTF_8);
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (IOException e) {
                throw new CliException("cannot write " + html + ": " + e.getMessage());
            }
            (json ? System.err : System.out).println("report written to " + target);
        }
        return 0;
    }
}
