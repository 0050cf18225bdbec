package dev.ferry.pki;

import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.cert.CertPathValidator;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.List;
import java.util.Set;

/**
 * One holder's TLS files: its certificate, its key and the cluster CA it trusts. {@link #load}
 * checks everything a daemon would otherwise discover at its first handshake (the key belongs to
 * the certificate, the certificate chains to the CA and names a Ferry identity of the CA's cluster,
 * it is valid now), so a wrong file is a clear start-up error instead of a cluster that silently
 * cannot talk.
 */
public record Credentials(Identity identity, Path certificate, Path key, Path ca, Path revocationList) {

    /**
     * @param revocationList the cluster's revocation list to honour; it need not exist (yet):
     *     see {@link RevocationWatch}
     */
    public Credentials {
        java.util.Objects.requireNonNull(revocationList, "revocationList");
    }

    /** Credentials whose revocation list is {@value RevocationList#FILE} beside the CA file. */
    public Credentials(Identity identity, Path certificate, Path key, Path ca) {
        this(identity, certificate, key, ca, ca.toAbsolutePath().resolveSibling(RevocationList.FILE));
    }

    /** The same credentials honouring the revocation list in {@code file} instead. */
    public Credentials withRevocationList(Path file) {
        return new Credentials(identity, certificate, key, ca, file);
    }

    public static Credentials load(Path certificate, Path key, Path ca, Clock clock) {
        X509Certificate cert = Pem.readCertificate(certificate);
        PrivateKey privateKey = Pem.readPrivateKey(key);
        if (!CertificateAuthority.Keys.matches(privateKey, cert.getPublicKey())) {
            throw new PkiException(PkiException.Step.READ, key + " is not the key of " + certificate);
        }
        X509Certificate caCert = Pem.readCertificate(ca);
        String cluster = CertificateAuthority.clusterOf(caCert)
                .orElseThrow(() -> new PkiException(PkiException.Step.READ, ca + " is not a Ferry cluster CA"));
        Instant now = clock.instant();
        verifyChain(cert, caCert, now, certificate + " against " + ca);
        Identity identity = Identity.of(cert)
                .orElseThrow(() -> new PkiException(
                        PkiException.Step.READ, certificate + " names no Ferry identity (ferry://CLUSTER/ROLE/NAME)"));
        if (!identity.cluster().equals(cluster)) {
            throw new PkiException(
                    PkiException.Step.READ,
                    certificate + " is for cluster " + identity.cluster() + " but " + ca + " is cluster " + cluster);
        }
        return new Credentials(identity, certificate, key, ca);
    }

    /** Verifies that {@code cert} was issued by {@code ca} and is valid at {@code at} (PKIX). */
    public static void verifyChain(X509Certificate cert, X509Certificate ca, Instant at, String what) {
        try {
            var path = CertificateFactory.getInstance("X.509").generateCertPath(List.of(cert));
            PKIXParameters params = new PKIXParameters(Set.of(new TrustAnchor(ca, null)));
            params.setRevocationEnabled(false);
            params.setDate(Date.from(at));
            CertPathValidator.getInstance("PKIX").validate(path, params);
        } catch (GeneralSecurityException e) {
            throw new PkiException(PkiException.Step.READ, what + ": " + e.getMessage(), e);
        }
    }

    public X509Certificate loadCertificate() {
        return Pem.readCertificate(certificate);
    }

    /** A warning line when this certificate or the CA is close to expiry, else the empty string. */
    public String expiryWarning(Instant now, Duration warnWithin) {
        X509Certificate cert = loadCertificate();
        X509Certificate caCert = Pem.readCertificate(ca);
        String mine = Validity.describe(
                "the certificate of " + identity,
                cert.getNotBefore().toInstant(),
                cert.getNotAfter().toInstant(),
                now,
                warnWithin);
        String theirs = Validity.describe(
                "the cluster CA " + ca,
                caCert.getNotBefore().toInstant(),
                caCert.getNotAfter().toInstant(),
                now,
                warnWithin);
        return String.join(
                "; ",
                java.util.stream.Stream.of(mine, theirs)
                        .filter(s -> !s.isEmpty())
                        .toList());
    }
}
