package dev.ferry.cli;

import dev.ferry.cluster.store.ZkSecurity;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.Identity;
import dev.ferry.pki.PkiException;
import dev.ferry.pki.Role;
import dev.ferry.rpc.Transport;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Option;

/**
 * The transport security of a command: mutual TLS from {@code --cert/--key/--ca} (or
 * $FERRY_CERT, $FERRY_KEY, $FERRY_CA), or plaintext only with an explicit {@code --insecure}. There
 * is no silent plaintext: a command given neither refuses to run.
 */
public final class TlsOptions {
    private static final Logger log = LoggerFactory.getLogger(TlsOptions.class);

    /** A certificate this close to expiry is warned about at start-up and in `cluster status`. */
    public static final Duration WARN_WITHIN = Duration.ofDays(30);

    @Option(
            names = "--cert",
            paramLabel = "FILE",
            description = "This party's certificate (PEM), from `ferry pki issue` (default: $FERRY_CERT).")
    Path cert;

    @Option(
            names = "--key",
            paramLabel = "FILE",
            description = "The certificate's private key (PEM, mode 0600) (default: $FERRY_KEY).")
    Path key;

    @Option(names = "--ca", paramLabel = "FILE", description = "The cluster CA's certificate (default: $FERRY_CA).")
    Path ca;

    @Option(
            names = "--crl",
            paramLabel = "FILE",
            description = "The cluster's revocation list, from `ferry pki revoke`; it may appear or change while "
                    + "running (default: $FERRY_CRL, else crl.pem beside the --ca file).")
    Path crl;

    @Option(
            names = "--insecure",
            description = "Run without TLS: anyone who reaches a port may call anything (benchmarks comparing the "
                    + "cost, trusted lab networks).")
    boolean insecure;

    private static Path orEnv(Path given, String env) {
        if (given != null) {
            return given;
        }
        String v = System.getenv(env);
        return v == null || v.isBlank() ? null : Path.of(v);
    }

    /** Whether TLS files were given on the command line or in the environment. */
    boolean given() {
        return orEnv(cert, "FERRY_CERT") != null || orEnv(key, "FERRY_KEY") != null || orEnv(ca, "FERRY_CA") != null;
    }

    /**
     * The credentials, when TLS files were given; empty with --insecure. Fails (exit 2) when
     * neither, when only some files were given, or when both.
     */
    Optional<Credentials> credentials(String who) {
        Path c = orEnv(cert, "FERRY_CERT");
        Path k = orEnv(key, "FERRY_KEY");
        Path a = orEnv(ca, "FERRY_CA");
        boolean any = c != null || k != null || a != null;
        if (insecure && (cert != null || key != null || ca != null || crl != null)) {
            throw new CliException("--insecure and --cert/--key/--ca/--crl contradict each other; pass one", 2);
        }
        if (insecure) {
            return Optional.empty();
        }
        if (!any) {
            throw new CliException(
                    who + " needs its TLS files: --cert FILE --key FILE --ca FILE (or $FERRY_CERT, $FERRY_KEY, "
                            + "$FERRY_CA; issue them with `ferry pki issue`), or --insecure to run without TLS",
                    2);
        }
        if (c == null || k == null || a == null) {
            throw new CliException(
                    "mutual TLS needs all of --cert, --key and --ca (given: " + (c == null ? "" : "cert ")
                            + (k == null ? "" : "key ") + (a == null ? "" : "ca") + ")",
                    2);
        }
        try {
            Credentials loaded = Credentials.load(c, k, a, Clock.systemUTC());
            Path r = orEnv(crl, "FERRY_CRL");
            return Optional.of(r == null ? loaded : loaded.withRevocationList(r.toAbsolutePath()));
        } catch (PkiException e) {
            throw new CliException(e.getMessage(), 2);
        }
    }

    /**
     * The transport of a daemon whose certificate must be {@code role} (and, when {@code name} is
     * not null, that name). Logs the identity, an expiry warning, or that it runs without TLS.
     */
    Transport daemon(String who, Role role, String name) {
        Optional<Credentials> creds = credentials(who);
        if (creds.isEmpty()) {
            log.warn(
                    "{}: running WITHOUT TLS (--insecure): anyone who reaches its port can call it, "
                            + "including taking VMs and reading guest memory",
                    who);
            return Transport.plaintext();
        }
        Identity id = creds.get().identity();
        if (id.role() != role || (name != null && !id.name().equals(name))) {
            throw new CliException(
                    who + " needs a certificate for " + role.token() + (name == null ? "" : " " + name) + ", but "
                            + creds.get().certificate() + " is " + id,
                    2);
        }
        String warning = creds.get().expiryWarning(Clock.systemUTC().instant(), WARN_WITHIN);
        if (!warning.isEmpty()) {
            log.warn("{}: {}", who, warning);
        }
        log.info("{}: mutual TLS as {} ({})", who, id, Transport.tlsImplementation());
        return Transport.mutualTls(creds.get());
    }

    /**
     * How this party talks to ZooKeeper: with the same certificate as over gRPC (TLS to the
     * ensemble's secure port, ACLs on what it creates), or plaintext with --insecure.
     */
    ZkSecurity zooKeeper(String who) {
        return credentials(who).map(ZkSecurity::x509).orElseGet(ZkSecurity::plaintext);
    }

    /** The transport of a client command (operator or viewer certificate, or --insecure). */
    Transport client(String who) {
        Optional<Credentials> creds = credentials(who);
        return creds.map(Transport::mutualTls).orElseGet(Transport::plaintext);
    }
}
