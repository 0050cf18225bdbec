package dev.ferry.cli;

import dev.ferry.pki.CertificateAuthority;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.Identity;
import dev.ferry.pki.Pem;
import dev.ferry.pki.Role;
import dev.ferry.pki.Validity;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

@Command(
        name = "pki",
        description = "The cluster's certificate authority and the certificates of its agents, coordinators and "
                + "operators.",
        subcommands = {PkiCommand.Init.class, PkiCommand.Issue.class, PkiCommand.Revoke.class, PkiCommand.Show.class})
final class PkiCommand implements Runnable {
    @Override
    public void run() {
        throw new picocli.CommandLine.ParameterException(
                new picocli.CommandLine(this), "missing subcommand: init, issue, revoke or show");
    }

    @Command(
            name = "init",
            description = "Create the cluster's certificate authority in DIR: ca.crt (give it to every host and "
                    + "operator) and ca.key (0600; keep it off the hosts, it mints identities).")
    static final class Init implements Runnable {
        @Option(names = "--dir", required = true, paramLabel = "DIR", description = "Where the CA's files go.")
        Path dir;

        @Option(
                names = "--cluster-name",
                defaultValue = "ferry",
                paramLabel = "NAME",
                description = "The cluster every certificate of this CA belongs to (default: ${DEFAULT-VALUE}).")
        String cluster;

        @Option(
                names = "--valid-for",
                defaultValue = "3650d",
                paramLabel = "DURATION",
                converter = CoordinatorCommand.DurationConverter.class,
                description = "How long the CA is valid (default: ${DEFAULT-VALUE}).")
        Duration validFor;

        @Override
        public void run() {
            CertificateAuthority ca = CertificateAuthority.create(dir, cluster, validFor, Clock.systemUTC());
            System.out.println("created the CA of cluster " + ca.cluster() + ": " + ca.certificateFile() + " (expires "
                    + ca.certificate().getNotAfter().toInstant() + "), key " + dir.resolve(CertificateAuthority.CA_KEY)
                    + " (0600)");
        }
    }

    @Command(
            name = "issue",
            description = "Issue a key and certificate for NAME in a role: NAME.key (0600) and NAME.crt, with ca.crt "
                    + "beside them. An agent's NAME is its host id; a coordinator's its replica id.")
    static final class Issue implements Runnable {
        @Parameters(index = "0", paramLabel = "NAME", description = "Host id, replica id or user name.")
        String name;

        @Option(
                names = "--role",
                required = true,
                paramLabel = "ROLE",
                description = "agent, coordinator, operator, viewer or zookeeper (a server of the ensemble: give its "
                        + "addresses with --san, which Ferry's ZooKeeper clients check).")
        String role;

        @Option(names = "--dir", required = true, paramLabel = "DIR", description = "The CA's directory.")
        Path dir;

        @Option(names = "--out", paramLabel = "DIR", description = "Where to write the files (default: the CA's DIR).")
        Path out;

        @Option(
                names = "--valid-for",
                defaultValue = "365d",
                paramLabel = "DURATION",
                converter = CoordinatorCommand.DurationConverter.class,
                description = "How long the certificate is valid (default: ${DEFAULT-VALUE}).")
        Duration validFor;

        @Option(
                names = "--san",
                paramLabel = "NAME|ADDRESS",
                description = "An extra DNS name or IP address in the certificate, for tools that check host names "
                        + "(Ferry checks the identity); repeatable.")
        List<String> sans = new ArrayList<>();

        @Override
        public void run() {
            Role r;
            try {
                r = Role.parse(role);
            } catch (IllegalArgumentException e) {
                throw new CliException("--role: " + e.getMessage(), 2);
            }
            List<String> dns = new ArrayList<>();
            List<InetAddress> addresses = new ArrayList<>();
            for (String s : sans) {
                if (looksLikeAddress(s)) {
                    try {
                        addresses.add(InetAddress.getByName(s));
                    } catch (UnknownHostException e) {
                        throw new CliException("--san " + s + ": not an IP address", 2);
                    }
                } else {
                    dns.add(s);
                }
            }
            CertificateAuthority ca = CertificateAuthority.load(dir);
            Credentials c = ca.issue(name, r, validFor, dns, addresses, out == null ? dir : out, Clock.systemUTC());
            System.out.println(
                    "issued " + c.identity() + ": " + c.certificate() + ", key " + c.key() + " (0600), CA " + c.ca());
        }

        private static boolean looksLikeAddress(String s) {
            // Literal addresses only: never resolve a name here (no DNS lookups while minting keys).
            return s.contains(":") || s.matches("[0-9.]+");
        }
    }

    @Command(
            name = "revoke",
            description = "Revoke certificates: every certificate the CA issued to NAME (of --role, if given), or the "
                    + "one in --cert. Writes the CA's signed revocation list, DIR/crl.pem; daemons and commands honour "
                    + "it at their next TLS handshake once it is beside their --ca file (or where --crl points). "
                    + "With --list, only prints the list.")
    static final class Revoke implements Runnable {
        @Parameters(index = "0", arity = "0..1", paramLabel = "NAME", description = "Host id, replica id or user name.")
        String name;

        @Option(names = "--role", paramLabel = "ROLE", description = "Only NAME's certificates of this role.")
        String role;

        @Option(names = "--cert", paramLabel = "FILE", description = "Revoke the certificate in FILE instead.")
        Path cert;

        @Option(names = "--list", description = "Print the revocation list and change nothing.")
        boolean list;

        @Option(names = "--dir", required = true, paramLabel = "DIR", description = "The CA's directory.")
        Path dir;

        @Override
        public void run() {
            CertificateAuthority ca = CertificateAuthority.load(dir);
            if (list) {
                if (name != null || cert != null || role != null) {
                    throw new CliException("--list takes no NAME, --role or --cert", 2);
                }
                var current = ca.revocationList();
                if (current.isEmpty()) {
                    System.out.println("no revocation list in " + dir + ": nothing revoked");
                    return;
                }
                System.out.println(ca.revocationListFile() + ": " + current.get());
                for (var e : current.get().entries()) {
                    System.out.println("  serial " + e.serial().toString(16) + " revoked " + e.revokedAt());
                }
                return;
            }
            if ((name == null) == (cert == null)) {
                throw new CliException("pass NAME or --cert FILE (one of them)", 2);
            }
            if (cert != null && role != null) {
                throw new CliException("--role goes with NAME, not with --cert", 2);
            }
            List<X509Certificate> certs;
            if (cert != null) {
                certs = List.of(Pem.readCertificate(cert));
            } else {
                java.util.Optional<Role> r;
                try {
                    r = role == null ? java.util.Optional.empty() : java.util.Optional.of(Role.parse(role));
                } catch (IllegalArgumentException e) {
                    throw new CliException("--role: " + e.getMessage(), 2);
                }
                certs = ca.issuedTo(name, r);
                if (certs.isEmpty()) {
                    throw new CliException(
                            "the CA in " + dir + " has no record of a certificate for " + name
                                    + (role == null ? "" : " as " + role) + " ("
                                    + dir.resolve(CertificateAuthority.ISSUED)
                                    + "/); revoke it by file with --cert FILE",
                            1);
                }
            }
            var before = ca.revocationList();
            var after = ca.revoke(certs, Clock.systemUTC());
            for (X509Certificate c : certs) {
                boolean already =
                        before.isPresent() && before.get().revokedAt(c).isPresent();
                System.out.println((already ? "already revoked " : "revoked ")
                        + Identity.of(c).map(Identity::toString).orElse("(no Ferry identity)") + " (serial "
                        + c.getSerialNumber().toString(16) + ", valid until "
                        + c.getNotAfter().toInstant() + ")");
            }
            System.out.println("wrote " + ca.revocationListFile() + ": " + after);
            System.out.println("copy it beside ca.crt on every host and operator machine (as "
                    + dev.ferry.pki.RevocationList.FILE
                    + ", or where --crl points); each daemon honours it at its next TLS handshake, without a restart");
        }
    }

    @Command(name = "show", description = "Show who certificates name, their roles and when they expire.")
    static final class Show implements Runnable {
        @Parameters(arity = "1..*", paramLabel = "FILE", description = "PEM certificate files.")
        List<Path> files;

        @Override
        public void run() {
            Instant now = Instant.now();
            for (Path f : files) {
                for (X509Certificate cert : Pem.readCertificates(f)) {
                    String who = Identity.of(cert)
                            .map(Identity::toString)
                            .orElse(
                                    cert.getBasicConstraints() >= 0
                                            ? "(certificate authority)"
                                            : "(no Ferry identity)");
                    String warning = Validity.describe(
                            f.toString(),
                            cert.getNotBefore().toInstant(),
                            cert.getNotAfter().toInstant(),
                            now,
                            Validity.DEFAULT_WARNING);
                    System.out.println(
                            f + ": " + who + ", valid " + cert.getNotBefore().toInstant() + " to "
                                    + cert.getNotAfter().toInstant() + (warning.isEmpty() ? "" : " — " + warning));
                }
            }
        }
    }
}
