package dev.ferry.pki;

import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Objects;

/**
 * When a holder's certificate and the cluster CA it trusts expire: what a daemon reports about
 * itself (in its registration or status) so that `ferry cluster status` can warn before a
 * certificate runs out and the holder drops out of the cluster at its next handshake.
 *
 * @param identity whom the certificate names
 * @param notAfter the certificate's last valid instant
 * @param caNotAfter the CA certificate's last valid instant
 */
public record CertificateExpiry(Identity identity, Instant notAfter, Instant caNotAfter) {
    public CertificateExpiry {
        Objects.requireNonNull(identity, "identity");
        Objects.requireNonNull(notAfter, "notAfter");
        Objects.requireNonNull(caNotAfter, "caNotAfter");
    }

    /** The dates of {@code certificate} (which must name a Ferry identity) and {@code ca}. */
    public static CertificateExpiry of(X509Certificate certificate, X509Certificate ca) {
        Identity id = Identity.of(certificate)
                .orElseThrow(() -> new PkiException(
                        PkiException.Step.READ, "the certificate names no Ferry identity (ferry://CLUSTER/ROLE/NAME)"));
        return new CertificateExpiry(
                id, certificate.getNotAfter().toInstant(), ca.getNotAfter().toInstant());
    }

    /**
     * Where a certificate stands when only its notAfter is known (another holder's, as it reported
     * it): {@link Validity#VALID}, {@link Validity#EXPIRING_SOON} or {@link Validity#EXPIRED}.
     */
    public static Validity validity(Instant notAfter, Instant now, Duration warnWithin) {
        return Validity.of(Instant.MIN, notAfter, now, warnWithin);
    }
}
