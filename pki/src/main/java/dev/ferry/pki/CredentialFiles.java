package dev.ferry.pki;

import java.nio.file.Path;
import java.time.Clock;
import java.util.List;

/**
 * Where one holder's TLS files are, as `ferry pki issue --out DIR` writes them (DIR/NAME.crt,
 * DIR/NAME.key, DIR/ca.crt) plus the revocation list it honours, and the command-line flags that
 * hand them to a Ferry daemon or command. Local clusters and the test kit start daemons this way.
 */
public record CredentialFiles(Path certificate, Path key, Path ca, Path revocationList) {
    /** {@code name}'s files in {@code dir}, honouring the revocation list {@code revocationList}. */
    public static CredentialFiles in(Path dir, String name, Path revocationList) {
        return new CredentialFiles(
                dir.resolve(name + ".crt"),
                dir.resolve(name + ".key"),
                dir.resolve(CertificateAuthority.CA_CERT),
                revocationList);
    }

    /** {@code --cert F --key F --ca F --crl F}. */
    public List<String> flags() {
        return List.of(
                "--cert",
                certificate.toString(),
                "--key",
                key.toString(),
                "--ca",
                ca.toString(),
                "--crl",
                revocationList.toString());
    }

    /** The credentials, checked as a daemon checks them at start-up. */
    public Credentials load(Clock clock) {
        return Credentials.load(certificate, key, ca, clock).withRevocationList(revocationList);
    }
}
