package dev.ferry.cli.cluster;

import dev.ferry.cli.CliException;
import dev.ferry.cluster.store.ZkSecurity;
import dev.ferry.pki.CertificateAuthority;
import dev.ferry.pki.CredentialFiles;
import dev.ferry.pki.Credentials;
import dev.ferry.pki.PkiException;
import dev.ferry.pki.RevocationList;
import dev.ferry.pki.Role;
import dev.ferry.rpc.Transport;
import java.net.InetAddress;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.List;

/**
 * The certificates of a local cluster (`ferry cluster up`, `ferry demo`): a CA of its own in
 * DIR/pki and a certificate for the coordinator, each agent and one operator, so that every part
 * and every command of that cluster speaks mutual TLS without the operator doing anything.
 *
 * <p>Layout: pki/ca.crt and ca.key (the CA), pki/coordinator/, pki/agents/ and pki/operator/, each
 * holding NAME.crt, NAME.key (0600) and a copy of ca.crt.
 */
public final class LocalPki {
    public static final String DIR = "pki";
    public static final String COORDINATOR = "coordinator-1";
    public static final String OPERATOR = "operator";
    /** Local clusters are for trying Ferry out and for tests; a year is more than they live. */
    private static final Duration VALIDITY = Duration.ofDays(365);

    private LocalPki() {}

    /** A fresh CA and certificates for {@code hosts} agents (an old cluster's are removed first). */
    public static Path create(Path clusterDir, String clusterName, List<String> hosts) {
        Path root = clusterDir.resolve(DIR);
        Clock clock = Clock.systemUTC();
        try {
            LocalCluster.deleteTree(root);
            CertificateAuthority ca =
                    CertificateAuthority.create(root, clusterName, CertificateAuthority.DEFAULT_CA_VALIDITY, clock);
            // The coordinator also runs the embedded ZooKeeper server, which presents this
            // certificate: ZooKeeper clients check that it names the address they dial.
            ca.issue(
                    COORDINATOR,
                    Role.COORDINATOR,
                    VALIDITY,
                    List.of("localhost"),
                    List.of(InetAddress.getLoopbackAddress()),
                    root.resolve("coordinator"),
                    clock);
            for (String h : hosts) {
                ca.issue(h, Role.AGENT, VALIDITY, List.of(), List.of(), root.resolve("agents"), clock);
            }
            ca.issue(OPERATOR, Role.OPERATOR, VALIDITY, List.of(), List.of(), root.resolve("operator"), clock);
            return root;
        } catch (PkiException e) {
            throw new CliException("cannot create the cluster's certificates in " + root + ": " + e.getMessage());
        }
    }

    /**
     * The daemon flags of {@code name}'s certificate in {@code sub} (coordinator or agents), with
     * the cluster's revocation list (pki/crl.pem, where `ferry pki revoke NAME --dir pki` writes it).
     */
    public static List<String> daemonArgs(Path pki, String sub, String name) {
        return CredentialFiles.in(pki.resolve(sub), name, pki.resolve(RevocationList.FILE))
                .flags();
    }

    /** The operator's credentials of the cluster whose certificates are in {@code pki}. */
    public static Credentials operator(Path pki) {
        try {
            return CredentialFiles.in(pki.resolve("operator"), OPERATOR, pki.resolve(RevocationList.FILE))
                    .load(Clock.systemUTC());
        } catch (PkiException e) {
            throw new CliException("the local cluster's operator certificate: " + e.getMessage());
        }
    }

    /** How commands reach {@code f}'s ZooKeeper: as its operator, or plaintext if it was started --insecure. */
    public static ZkSecurity zooKeeper(ClusterFile f) {
        return f.pki() == null ? ZkSecurity.plaintext() : ZkSecurity.x509(operator(Path.of(f.pki())));
    }

    /** How commands reach the parts of {@code f}: as its operator, or plaintext if it was started --insecure. */
    public static Transport transport(ClusterFile f) {
        return f.pki() == null ? Transport.plaintext() : Transport.mutualTls(operator(Path.of(f.pki())));
    }
}
