package dev.ferry.testkit.netns;

import dev.ferry.cli.DaemonJvm;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * How a {@link NetnsCluster} runs {@code ferry}. The {@code ferry} script itself is not used: it
 * rebuilds the jar when a source file is newer than it, and a test run on a working tree (or
 * seven daemons starting at once) must not start Maven builds. Both launchers run the CLI's own
 * {@code Main} with the arguments an operator types, and daemons with the JVM options the script
 * gives them ({@link DaemonJvm}), followed by the kit's ({@link #TEST_JVM_OPTIONS}, then the
 * builder's; later options win).
 *
 * <ul>
 *   <li>{@link #classpath()} (default): the test JVM's class path, so the daemons run exactly the
 *       code under test, whichever phase Maven stopped at;
 *   <li>{@link #jar(Path)}: a built {@code cli/target/ferry.jar} ({@code java -jar}), as the script
 *       runs it.
 * </ul>
 */
public final class Launcher {
    /**
     * Appended to the daemons' options in tests: a 2-core machine starts seven JVMs at once, so no
     * pre-touched 128 MiB heap per agent and C1 only (start-up time, not peak speed, is what counts).
     */
    public static final List<String> TEST_JVM_OPTIONS =
            List.of("-Xms32m", "-XX:-AlwaysPreTouch", "-XX:TieredStopAtLevel=1", "-Xshare:auto");

    private final Path jar;

    private Launcher(Path jar) {
        this.jar = jar;
    }

    public static Launcher classpath() {
        return new Launcher(null);
    }

    /** {@code java -jar JAR}; fails now if the jar is missing (build it with {@code mvn package} first). */
    public static Launcher jar(Path jar) {
        if (!Files.isRegularFile(jar)) {
            throw new IllegalArgumentException(jar + " does not exist: build it first (mvn -DskipTests package)");
        }
        return new Launcher(jar.toAbsolutePath());
    }

    /** The java binary: the test JVM's own (JDK 25). */
    List<String> java() {
        return List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString());
    }

    /** The class path for non-Ferry JVMs (ZooKeeper servers): the test's. */
    String classPath() {
        return System.getProperty("java.class.path");
    }

    /** {@code java DAEMON-OPTIONS EXTRA ... Main} (then the subcommand and its arguments). */
    List<String> daemon(List<String> daemonOptions, List<String> extra) {
        List<String> cmd = new ArrayList<>(java());
        cmd.addAll(daemonOptions);
        cmd.addAll(extra);
        cmd.addAll(main());
        return cmd;
    }

    /** A CLI command's JVM: what the script uses for commands that are not daemons. */
    List<String> cli() {
        List<String> cmd = new ArrayList<>(java());
        cmd.addAll(List.of(
                "--enable-native-access=ALL-UNNAMED", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xshare:auto"));
        cmd.addAll(main());
        return cmd;
    }

    private List<String> main() {
        // The CLI's own logging configuration, as an operator gets it: with the test's
        // logback-test.xml also on the class path, logback would pick that one and print a
        // warning about the two to stdout, into the output a test parses.
        List<String> logging = List.of("-Dlogback.configurationFile=logback.xml");
        List<String> out = new ArrayList<>(logging);
        if (jar != null) {
            out.addAll(List.of("-jar", jar.toString()));
            return out;
        }
        out.addAll(List.of("-cp", classPath(), "dev.ferry.cli.Main"));
        return out;
    }
}
