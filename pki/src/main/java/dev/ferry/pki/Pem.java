package dev.ferry.pki;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.UUID;

/**
 * PEM files as OpenSSL, gRPC's Netty TLS and ZooKeeper's X509 support read them: certificates and
 * unencrypted PKCS#8 private keys. Key files are created 0600 from the first byte (never written
 * and then chmod-ed), and nothing here overwrites an existing file: a second `pki init` must not
 * silently replace the key every certificate of a cluster chains to.
 */
public final class Pem {
    private Pem() {}

    public static String certificate(X509Certificate cert) {
        try {
            return block("CERTIFICATE", cert.getEncoded());
        } catch (CertificateException e) {
            throw new PkiException(PkiException.Step.WRITE, "cannot encode certificate", e);
        }
    }

    public static String privateKey(PrivateKey key) {
        if (!"PKCS#8".equals(key.getFormat())) {
            throw new PkiException(PkiException.Step.WRITE, "private key is not PKCS#8 but " + key.getFormat());
        }
        return block("PRIVATE KEY", key.getEncoded());
    }

    private static String block(String type, byte[] der) {
        String body = Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(der);
        return "-----BEGIN " + type + "-----\n" + body + "\n-----END " + type + "-----\n";
    }

    public static List<X509Certificate> readCertificates(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            List<X509Certificate> certs = new ArrayList<>();
            for (var c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                certs.add((X509Certificate) c);
            }
            if (certs.isEmpty()) {
                throw new PkiException(PkiException.Step.READ, file + " holds no certificate");
            }
            return certs;
        } catch (IOException | CertificateException e) {
            throw new PkiException(
                    PkiException.Step.READ, "cannot read certificates from " + file + ": " + e.getMessage(), e);
        }
    }

    public static X509Certificate readCertificate(Path file) {
        return readCertificates(file).getFirst();
    }

    public static PrivateKey readPrivateKey(Path file) {
        String text;
        try {
            text = Files.readString(file, StandardCharsets.US_ASCII);
        } catch (IOException e) {
            throw new PkiException(PkiException.Step.READ, "cannot read key " + file + ": " + e.getMessage(), e);
        }
        String begin = "-----BEGIN PRIVATE KEY-----";
        String end = "-----END PRIVATE KEY-----";
        int b = text.indexOf(begin);
        int e = text.indexOf(end);
        if (b < 0 || e < b) {
            throw new PkiException(
                    PkiException.Step.READ, file + " is not an unencrypted PKCS#8 PEM key (BEGIN PRIVATE KEY)");
        }
        byte[] der;
        try {
            der = Base64.getMimeDecoder().decode(text.substring(b + begin.length(), e));
        } catch (IllegalArgumentException ex) {
            throw new PkiException(PkiException.Step.READ, file + ": broken base64 in the key", ex);
        }
        for (String algorithm : List.of("EC", "RSA", "Ed25519")) {
            try {
                return KeyFactory.getInstance(algorithm).generatePrivate(new PKCS8EncodedKeySpec(der));
            } catch (GeneralSecurityException ignored) {
                // Try the next algorithm: PKCS#8 says which, but the JDK wants it named up front.
            }
        }
        throw new PkiException(PkiException.Step.READ, file + ": not an EC, RSA or Ed25519 private key");
    }

    public static X509Certificate parseCertificate(byte[] der) {
        try {
            return (X509Certificate)
                    CertificateFactory.getInstance("X.509").generateCertificate(new ByteArrayInputStream(der));
        } catch (CertificateException e) {
            throw new PkiException(PkiException.Step.READ, "not an X.509 certificate", e);
        }
    }

    public static String crl(java.security.cert.X509CRL crl) {
        try {
            return block("X509 CRL", crl.getEncoded());
        } catch (java.security.cert.CRLException e) {
            throw new PkiException(PkiException.Step.WRITE, "cannot encode a revocation list", e);
        }
    }

    /** The first revocation list in {@code file} (PEM "X509 CRL", or DER). */
    public static java.security.cert.X509CRL readCrl(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            return (java.security.cert.X509CRL)
                    CertificateFactory.getInstance("X.509").generateCRL(in);
        } catch (IOException | CertificateException | java.security.cert.CRLException | ClassCastException e) {
            throw new PkiException(
                    PkiException.Step.READ, "cannot read a revocation list from " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Writes {@code file} readable by everyone, replacing it atomically if it exists: for files
     * that are meant to change (the revocation list), read by daemons at any moment, which must
     * see the old or the new one, never half of either.
     */
    public static void replacePublic(Path file, String text) {
        write(file, text, "rw-r--r--", true);
    }

    /** Writes a new file readable by everyone (certificates are public); refuses to replace one. */
    public static void writePublic(Path file, String text) {
        write(file, text, "rw-r--r--", false);
    }

    /** Writes a new file only its owner can read (private keys); refuses to replace one. */
    public static void writeSecret(Path file, String text) {
        write(file, text, "rw-------", false);
    }

    /** Through a hidden temporary file beside it, so that nobody ever reads half of {@code file}. */
    private static void write(Path file, String text, String permissions, boolean replace) {
        if (!replace && Files.exists(file)) {
            throw new PkiException(PkiException.Step.WRITE, file + " already exists; not replacing it");
        }
        Path dir = file.toAbsolutePath().getParent();
        Path tmp = dir.resolve("." + file.getFileName() + "." + UUID.randomUUID() + ".tmp");
        try {
            Files.createDirectories(dir);
            Files.createFile(tmp, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString(permissions)));
            Files.writeString(tmp, text, StandardCharsets.US_ASCII, StandardOpenOption.TRUNCATE_EXISTING);
            if (replace) {
                Files.move(
                        tmp,
                        file,
                        java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            } else {
                // Not ATOMIC_MOVE: that may replace an existing file; a plain move refuses to.
                Files.move(tmp, file);
            }
        } catch (FileAlreadyExistsException e) {
            throw new PkiException(PkiException.Step.WRITE, file + " already exists; not replacing it", e);
        } catch (IOException e) {
            throw new PkiException(PkiException.Step.WRITE, "cannot write " + file + ": " + e.getMessage(), e);
        } finally {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // A leftover dot-file is harmless and names itself as temporary.
            }
        }
    }
}
