package dev.ferry.pki;

import java.math.BigInteger;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Date;
import java.util.List;
import java.util.Optional;
import javax.security.auth.x500.X500Principal;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x500.X500NameBuilder;
import org.bouncycastle.asn1.x500.style.BCStyle;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.ExtendedKeyUsage;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyPurposeId;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.CertIOException;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509ExtensionUtils;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.OperatorCreationException;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

/**
 * A cluster's certificate authority: one directory holding {@code ca.crt} and {@code ca.key}
 * (0600). It issues one certificate per identity (agent, coordinator replica, operator, viewer),
 * each naming its {@link Identity} as a URI subject alternative name and usable for both ends of a
 * TLS connection (every Ferry daemon is a client and a server).
 *
 * <p>Keys are ECDSA P-256: TLS 1.3 handshakes with them cost a fraction of RSA's, and every TLS
 * stack Ferry meets (JSSE, BoringSSL, ZooKeeper's Netty) supports them. The CA may sign only end
 * certificates (path length 0), so a stolen agent key cannot mint identities.
 */
public final class CertificateAuthority {
    public static final String CA_CERT = "ca.crt";
    public static final String CA_KEY = "ca.key";
    /** Every certificate this CA issued, as SERIAL.crt: what `pki revoke NAME` looks names up in. */
    public static final String ISSUED = "issued";

    public static final Duration DEFAULT_CA_VALIDITY = Duration.ofDays(3650);
    public static final Duration DEFAULT_VALIDITY = Duration.ofDays(365);
    // Certificates are valid a day before they are issued: hosts' clocks disagree, and a certificate
    // that is "not yet valid" on a peer is an outage. Five minutes was not enough: the chaos suite's
    // clock nemesis (scenario 11) set an agent's wall clock 73 minutes back, and that agent refused
    // every peer's fresh certificate ("ssl exception"), so no migration could reach it. A day covers
    // any step NTP would leave uncorrected; expiry is unaffected.
    static final Duration BACKDATE = Duration.ofDays(1);
    private static final String SIGNATURE = "SHA256withECDSA";
    private static final SecureRandom RANDOM = new SecureRandom();

    private final Path dir;
    private final String cluster;
    private final X509Certificate certificate;
    private final PrivateKey key;

    private CertificateAuthority(Path dir, String cluster, X509Certificate certificate, PrivateKey key) {
        this.dir = dir;
        this.cluster = cluster;
        this.certificate = certificate;
        this.key = key;
    }

    /** Creates a new CA in {@code dir}; refuses if one is there already. */
    public static CertificateAuthority create(Path dir, String cluster, Duration validity, Clock clock) {
        Identity.requireName("cluster", cluster);
        if (Files.exists(dir.resolve(CA_KEY)) || Files.exists(dir.resolve(CA_CERT))) {
            throw new PkiException(
                    PkiException.Step.CREATE_CA,
                    dir + " already holds a certificate authority; not replacing it (every certificate of the"
                            + " cluster chains to it)");
        }
        try {
            KeyPair pair = newKeyPair();
            Instant now = clock.instant();
            X500Name subject = new X500NameBuilder(BCStyle.INSTANCE)
                    .addRDN(BCStyle.O, "Ferry")
                    .addRDN(BCStyle.CN, "Ferry cluster " + cluster + " CA")
                    .build();
            X509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(
                    subject,
                    serial(),
                    Date.from(now.minus(BACKDATE)),
                    Date.from(now.plus(validity)),
                    subject,
                    pair.getPublic());
            JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(0));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
            b.addExtension(Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(pair.getPublic()));
            // The cluster's name travels in the CA itself, so `pki issue` cannot mix clusters.
            b.addExtension(
                    Extension.subjectAlternativeName,
                    false,
                    new GeneralNames(
                            new GeneralName(GeneralName.uniformResourceIdentifier, Identity.SCHEME + "://" + cluster)));
            X509Certificate cert = sign(b, pair.getPrivate());
            Pem.writeSecret(dir.resolve(CA_KEY), Pem.privateKey(pair.getPrivate()));
            Pem.writePublic(dir.resolve(CA_CERT), Pem.certificate(cert));
            return new CertificateAuthority(dir, cluster, cert, pair.getPrivate());
        } catch (GeneralSecurityException | CertIOException | OperatorCreationException e) {
            throw new PkiException(PkiException.Step.CREATE_CA, "cannot create the CA: " + e.getMessage(), e);
        }
    }

    /** Loads the CA in {@code dir}, checking that its key matches its certificate. */
    public static CertificateAuthority load(Path dir) {
        Path certFile = dir.resolve(CA_CERT);
        Path keyFile = dir.resolve(CA_KEY);
        if (!Files.exists(certFile) || !Files.exists(keyFile)) {
            throw new PkiException(
                    PkiException.Step.LOAD_CA,
                    dir + " holds no certificate authority (" + CA_CERT + " and " + CA_KEY
                            + "); create one with: ferry pki init --dir " + dir);
        }
        X509Certificate cert = Pem.readCertificate(certFile);
        PrivateKey key = Pem.readPrivateKey(keyFile);
        if (!Keys.matches(key, cert.getPublicKey())) {
            throw new PkiException(PkiException.Step.LOAD_CA, keyFile + " is not the key of " + certFile);
        }
        String cluster = clusterOf(cert)
                .orElseThrow(
                        () -> new PkiException(PkiException.Step.LOAD_CA, certFile + " is not a Ferry cluster CA"));
        return new CertificateAuthority(dir, cluster, cert, key);
    }

    static Optional<String> clusterOf(X509Certificate ca) {
        try {
            var names = ca.getSubjectAlternativeNames();
            if (names == null) {
                return Optional.empty();
            }
            for (List<?> n : names) {
                if (Integer.valueOf(6).equals(n.get(0))
                        && n.get(1) instanceof String s
                        && s.startsWith(Identity.SCHEME + "://")) {
                    String c = s.substring(Identity.SCHEME.length() + 3);
                    return c.isEmpty() || c.contains("/") ? Optional.empty() : Optional.of(c);
                }
            }
            return Optional.empty();
        } catch (java.security.cert.CertificateParsingException e) {
            return Optional.empty();
        }
    }

    public String cluster() {
        return cluster;
    }

    public X509Certificate certificate() {
        return certificate;
    }

    public Path certificateFile() {
        return dir.resolve(CA_CERT);
    }

    public Path dir() {
        return dir;
    }

    /**
     * Issues a key and certificate for {@code name} in {@code role}, written to {@code outDir} as
     * NAME.key (0600) and NAME.crt, with a copy of the CA certificate beside them when it is not
     * there. Extra DNS names and addresses are added for tools that verify host names; Ferry
     * itself checks the identity URI.
     */
    public Credentials issue(
            String name,
            Role role,
            Duration validity,
            List<String> dnsNames,
            List<InetAddress> addresses,
            Path outDir,
            Clock clock) {
        Identity identity = new Identity(cluster, role, name);
        Path certFile = outDir.resolve(name + ".crt");
        Path keyFile = outDir.resolve(name + ".key");
        if (Files.exists(certFile) || Files.exists(keyFile)) {
            throw new PkiException(
                    PkiException.Step.ISSUE, certFile + " or " + keyFile + " already exists; not replacing it");
        }
        Instant now = clock.instant();
        Instant notAfter = now.plus(validity);
        if (notAfter.isAfter(certificate.getNotAfter().toInstant())) {
            // A certificate outliving its CA would fail verification anyway; say so now.
            throw new PkiException(
                    PkiException.Step.ISSUE,
                    "the certificate would outlive the CA (which expires at "
                            + certificate.getNotAfter().toInstant() + "); choose a shorter validity");
        }
        try {
            KeyPair pair = newKeyPair();
            X500Name subject = subjectName(cluster, role);
            X509v3CertificateBuilder b = new JcaX509v3CertificateBuilder(
                    certificate,
                    serial(),
                    Date.from(now.minus(BACKDATE)),
                    Date.from(notAfter),
                    subject,
                    pair.getPublic());
            JcaX509ExtensionUtils ext = new JcaX509ExtensionUtils();
            b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
            b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature));
            b.addExtension(Extension.extendedKeyUsage, false, new ExtendedKeyUsage(new KeyPurposeId[] {
                KeyPurposeId.id_kp_serverAuth, KeyPurposeId.id_kp_clientAuth
            }));
            b.addExtension(Extension.subjectKeyIdentifier, false, ext.createSubjectKeyIdentifier(pair.getPublic()));
            b.addExtension(Extension.authorityKeyIdentifier, false, ext.createAuthorityKeyIdentifier(certificate));
            List<GeneralName> sans = new ArrayList<>();
            sans.add(new GeneralName(
                    GeneralName.uniformResourceIdentifier, identity.uri().toString()));
            for (String dns : dnsNames) {
                sans.add(new GeneralName(GeneralName.dNSName, dns));
            }
            for (InetAddress a : addresses) {
                sans.add(new GeneralName(GeneralName.iPAddress, a.getHostAddress()));
            }
            b.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(sans.toArray(GeneralName[]::new)));
            X509Certificate cert = sign(b, key);
            Pem.writeSecret(keyFile, Pem.privateKey(pair.getPrivate()));
            Pem.writePublic(certFile, Pem.certificate(cert));
            Pem.writePublic(dir.resolve(ISSUED).resolve(RevocationList.serialOf(cert) + ".crt"), Pem.certificate(cert));
            Path caCopy = outDir.resolve(CA_CERT);
            if (!Files.exists(caCopy)) {
                Pem.writePublic(caCopy, Pem.certificate(certificate));
            }
            return new Credentials(identity, certFile, keyFile, caCopy);
        } catch (GeneralSecurityException | CertIOException | OperatorCreationException e) {
            throw new PkiException(PkiException.Step.ISSUE, "cannot issue for " + identity + ": " + e.getMessage(), e);
        }
    }

    /** Where this CA writes its revocation list ({@value RevocationList#FILE} beside ca.crt). */
    public Path revocationListFile() {
        return dir.resolve(RevocationList.FILE);
    }

    /** The revocation list this CA wrote last, or empty if it never revoked anything. */
    public Optional<RevocationList> revocationList() {
        Path f = revocationListFile();
        return Files.exists(f) ? Optional.of(RevocationList.read(f, certificate)) : Optional.empty();
    }

    /**
     * The certificates this CA issued to {@code name} (any role when {@code role} is empty), as
     * recorded in {@value #ISSUED}/ at issue. Certificates issued before that record existed are
     * not there: revoke those by file.
     */
    public List<X509Certificate> issuedTo(String name, Optional<Role> role) {
        Path issued = dir.resolve(ISSUED);
        List<X509Certificate> out = new ArrayList<>();
        if (!Files.isDirectory(issued)) {
            return out;
        }
        try (var files = Files.list(issued)) {
            for (Path f : files.filter(p -> p.getFileName().toString().endsWith(".crt"))
                    .sorted()
                    .toList()) {
                X509Certificate c = Pem.readCertificate(f);
                Optional<Identity> id = Identity.of(c);
                if (id.isPresent()
                        && id.get().name().equals(name)
                        && role.map(r -> r == id.get().role()).orElse(true)) {
                    out.add(c);
                }
            }
        } catch (java.io.IOException e) {
            throw new PkiException(PkiException.Step.READ, "cannot list " + issued + ": " + e.getMessage(), e);
        }
        return out;
    }

    /**
     * Adds {@code certs} to the revocation list (keeping what it named before) and writes the new
     * list, signed, with its number one higher, atomically over the old one. Refuses a certificate
     * this CA did not issue. The list's next-update time is the CA's expiry: Ferry treats the list
     * as current until a newer one replaces it, so a list nobody re-signs never locks a cluster out.
     */
    public RevocationList revoke(List<X509Certificate> certs, Clock clock) {
        for (X509Certificate c : certs) {
            Credentials.verifyChain(
                    c, certificate, c.getNotBefore().toInstant(), "certificate " + RevocationList.serialOf(c));
        }
        Instant now = clock.instant();
        Optional<RevocationList> old = revocationList();
        try {
            var b = new org.bouncycastle.cert.jcajce.JcaX509v2CRLBuilder(certificate, Date.from(now));
            b.setNextUpdate(certificate.getNotAfter());
            java.util.Set<BigInteger> listed = new java.util.HashSet<>();
            if (old.isPresent()) {
                for (RevocationList.Entry e : old.get().entries()) {
                    b.addCRLEntry(
                            e.serial(), Date.from(e.revokedAt()), org.bouncycastle.asn1.x509.CRLReason.unspecified);
                    listed.add(e.serial());
                }
            }
            for (X509Certificate c : certs) {
                if (listed.add(c.getSerialNumber())) {
                    b.addCRLEntry(
                            c.getSerialNumber(), Date.from(now), org.bouncycastle.asn1.x509.CRLReason.unspecified);
                }
            }
            BigInteger number =
                    old.map(RevocationList::number).orElse(BigInteger.ZERO).add(BigInteger.ONE);
            b.addExtension(Extension.cRLNumber, false, new org.bouncycastle.asn1.x509.CRLNumber(number));
            b.addExtension(
                    Extension.authorityKeyIdentifier,
                    false,
                    new JcaX509ExtensionUtils().createAuthorityKeyIdentifier(certificate));
            var crl = new org.bouncycastle.cert.jcajce.JcaX509CRLConverter()
                    .getCRL(b.build(new JcaContentSignerBuilder(SIGNATURE).build(key)));
            RevocationList list = RevocationList.of(crl, certificate, "the new revocation list");
            Pem.replacePublic(revocationListFile(), Pem.crl(crl));
            return list;
        } catch (GeneralSecurityException | CertIOException | OperatorCreationException e) {
            throw new PkiException(PkiException.Step.REVOKE, "cannot sign a revocation list: " + e.getMessage(), e);
        }
    }

    /**
     * The subject of every certificate of {@code role} in {@code cluster}: the same for all its
     * holders, and without the holder's name (which is in the identity URI), because the subject
     * is what ZooKeeper's x509 authentication names a client by, and its ACLs match names exactly:
     * a subject shared by a role is what lets one ACL entry stand for every agent, present or
     * future (see docs/SECURITY.md). The cluster is in it so that clusters sharing an ensemble
     * (with both CAs trusted) are told apart.
     */
    static X500Name subjectName(String cluster, Role role) {
        return new X500NameBuilder(BCStyle.INSTANCE)
                .addRDN(BCStyle.O, "Ferry")
                .addRDN(BCStyle.OU, "cluster " + cluster)
                .addRDN(BCStyle.CN, role.token())
                .build();
    }

    /**
     * {@link #subjectName} as ZooKeeper's {@code X509AuthenticationProvider} writes it (RFC 2253,
     * {@link X500Principal#getName()}): the id its ACLs name a role by.
     */
    public static String zooKeeperId(String cluster, Role role) {
        Identity.requireName("cluster", cluster);
        try {
            return new X500Principal(subjectName(cluster, role).getEncoded()).getName();
        } catch (java.io.IOException e) {
            throw new PkiException(PkiException.Step.WRITE, "cannot encode a subject: " + e.getMessage(), e);
        }
    }

    private static KeyPair newKeyPair() throws GeneralSecurityException {
        KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"), RANDOM);
        return g.generateKeyPair();
    }

    private static BigInteger serial() {
        // 127 random bits: unique without a counter to keep, and positive as X.509 requires.
        byte[] b = new byte[16];
        RANDOM.nextBytes(b);
        b[0] &= 0x7f;
        BigInteger s = new BigInteger(b);
        return s.signum() == 0 ? BigInteger.ONE : s;
    }

    private static X509Certificate sign(X509v3CertificateBuilder b, PrivateKey signer)
            throws OperatorCreationException, GeneralSecurityException {
        return new JcaX509CertificateConverter()
                .getCertificate(b.build(new JcaContentSignerBuilder(SIGNATURE).build(signer)));
    }

    @Override
    public String toString() {
        return "CA of cluster " + cluster + " in " + dir;
    }

    /** Key checks that need no provider beyond the JDK. */
    static final class Keys {
        private Keys() {}

        static boolean matches(PrivateKey key, PublicKey pub) {
            try {
                byte[] probe = "ferry-key-match".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
                String alg = switch (pub.getAlgorithm()) {
                    case "EC" -> "SHA256withECDSA";
                    case "RSA" -> "SHA256withRSA";
                    default -> pub.getAlgorithm();
                };
                var s = java.security.Signature.getInstance(alg);
                s.initSign(key);
                s.update(probe);
                byte[] sig = s.sign();
                var v = java.security.Signature.getInstance(alg);
                v.initVerify(pub);
                v.update(probe);
                return v.verify(sig);
            } catch (GeneralSecurityException e) {
                return false;
            }
        }
    }
}
