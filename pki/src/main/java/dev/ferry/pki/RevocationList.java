package dev.ferry.pki;

import java.math.BigInteger;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.cert.X509CRL;
import java.security.cert.X509CRLEntry;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * The cluster's certificate revocation list: a standard X.509 CRL ({@value #FILE}, PEM) signed by
 * the cluster CA, naming the serial numbers of certificates that must no longer be accepted (a
 * lost laptop's operator key, a decommissioned host). {@code ferry pki revoke} writes it beside
 * the CA; every daemon and command reads it beside its own {@code --ca} file (or {@code --crl})
 * and refuses those certificates at the next handshake.
 *
 * <p>Only a list the CA signed counts: a file anyone could edit would otherwise let them
 * un-revoke a key by deleting lines. {@link #read} checks the signature and the issuer.
 */
public final class RevocationList {
    public static final String FILE = "crl.pem";

    /** One revoked certificate. */
    public record Entry(BigInteger serial, Instant revokedAt) {}

    private final X509CRL crl;

    private RevocationList(X509CRL crl) {
        this.crl = crl;
    }

    /** Reads {@code file} and checks that {@code ca} signed it; throws a {@link PkiException} if not. */
    public static RevocationList read(Path file, X509Certificate ca) {
        X509CRL crl = Pem.readCrl(file);
        return of(crl, ca, file.toString());
    }

    static RevocationList of(X509CRL crl, X509Certificate ca, String what) {
        if (!crl.getIssuerX500Principal().equals(ca.getSubjectX500Principal())) {
            throw new PkiException(
                    PkiException.Step.READ,
                    what + " is a revocation list of " + crl.getIssuerX500Principal() + ", not of this cluster's CA ("
                            + ca.getSubjectX500Principal() + ")");
        }
        try {
            crl.verify(ca.getPublicKey());
        } catch (GeneralSecurityException e) {
            throw new PkiException(
                    PkiException.Step.READ,
                    what + " is not signed by this cluster's CA (" + e.getMessage() + "); ignoring it",
                    e);
        }
        return new RevocationList(crl);
    }

    /** When {@code cert} was revoked, or empty if this list does not name it. */
    public Optional<Instant> revokedAt(X509Certificate cert) {
        if (!cert.getIssuerX500Principal().equals(crl.getIssuerX500Principal())) {
            return Optional.empty();
        }
        X509CRLEntry e = crl.getRevokedCertificate(cert.getSerialNumber());
        return e == null ? Optional.empty() : Optional.of(e.getRevocationDate().toInstant());
    }

    /** Every revoked serial, oldest revocation first. */
    public List<Entry> entries() {
        Set<? extends X509CRLEntry> revoked = crl.getRevokedCertificates();
        List<Entry> out = new ArrayList<>();
        if (revoked != null) {
            for (X509CRLEntry e : revoked) {
                out.add(new Entry(e.getSerialNumber(), e.getRevocationDate().toInstant()));
            }
        }
        out.sort(Comparator.comparing(Entry::revokedAt).thenComparing(Entry::serial));
        return out;
    }

    /** The CRL number: each list the CA writes counts one up, so a newer list is recognisable. */
    public BigInteger number() {
        byte[] ext = crl.getExtensionValue(org.bouncycastle.asn1.x509.Extension.cRLNumber.getId());
        if (ext == null) {
            return BigInteger.ZERO;
        }
        try {
            var octets = org.bouncycastle.asn1.ASN1OctetString.getInstance(ext);
            return org.bouncycastle.asn1.ASN1Integer.getInstance(octets.getOctets())
                    .getValue();
        } catch (IllegalArgumentException e) {
            return BigInteger.ZERO;
        }
    }

    public Instant issuedAt() {
        return crl.getThisUpdate().toInstant();
    }

    X509CRL crl() {
        return crl;
    }

    /** How logs and `pki show` name a serial: hexadecimal, as OpenSSL prints it. */
    public static String serialOf(X509Certificate cert) {
        return cert.getSerialNumber().toString(16);
    }

    @Override
    public String toString() {
        return "revocation list #" + number() + " (" + entries().size() + " revoked, issued " + issuedAt() + ")";
    }
}
