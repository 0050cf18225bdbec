package dev.ferry.pki;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CertificateAuthorityTest {
    private static final Clock NOW = Clock.fixed(Instant.parse("2026-12-06T12:00:00Z"), ZoneOffset.UTC);

    @TempDir
    Path dir;

    @Test
    void issuedCertificatesNameTheirIdentityAndChainToTheCa() throws Exception {
        CertificateAuthority ca = CertificateAuthority.create(dir, "prod", Duration.ofDays(3650), NOW);
        Credentials c = ca.issue(
                "host-1",
                Role.AGENT,
                Duration.ofDays(365),
                List.of("host-1.example"),
                List.of(InetAddress.getByName("198.18.0.1")),
                dir.resolve("agents"),
                NOW);

        Credentials loaded = Credentials.load(c.certificate(), c.key(), c.ca(), NOW);
        assertEquals(new Identity("prod", Role.AGENT, "host-1"), loaded.identity());
        assertEquals("ferry://prod/agent/host-1", loaded.identity().toString());
        var cert = loaded.loadCertificate();
        assertTrue(cert.getExtendedKeyUsage().containsAll(List.of("1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2")));
        assertEquals(-1, cert.getBasicConstraints(), "an issued certificate must not be a CA");
        assertEquals(0, ca.certificate().getBasicConstraints(), "the CA signs end certificates only");
    }

    @Test
    void theSubjectIsTheRoleOfTheClusterWhichZooKeeperAclsName() throws Exception {
        CertificateAuthority ca = CertificateAuthority.create(dir, "prod", Duration.ofDays(3650), NOW);
        var one = ca.issue("host-1", Role.AGENT, Duration.ofDays(30), List.of(), List.of(), dir, NOW)
                .loadCertificate();
        var two = ca.issue("host-2", Role.AGENT, Duration.ofDays(30), List.of(), List.of(), dir, NOW)
                .loadCertificate();
        // ZooKeeper's X509AuthenticationProvider names a client by getSubjectX500Principal().getName().
        String id = one.getSubjectX500Principal().getName();
        assertEquals(CertificateAuthority.zooKeeperId("prod", Role.AGENT), id);
        assertEquals(id, two.getSubjectX500Principal().getName(), "one id for every agent");
        assertEquals("CN=agent,OU=cluster prod,O=Ferry", id);
        assertTrue(!id.equals(CertificateAuthority.zooKeeperId("prod2", Role.AGENT)));
        assertTrue(!id.equals(CertificateAuthority.zooKeeperId("prod", Role.COORDINATOR)));
    }

    @Test
    void keysAreReadableByTheirOwnerOnly() throws Exception {
        CertificateAuthority ca = CertificateAuthority.create(dir, "prod", Duration.ofDays(3650), NOW);
        Credentials c = ca.issue("alice", Role.OPERATOR, Duration.ofDays(30), List.of(), List.of(), dir, NOW);
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(c.key())));
        assertEquals(
                "rw-------",
                PosixFilePermissions.toString(Files.getPosixFilePermissions(dir.resolve(CertificateAuthority.CA_KEY))));
        assertEquals("rw-r--r--", PosixFilePermissions.toString(Files.getPosixFilePermissions(c.certificate())));
    }

    @Test
    void aSecondInitDoesNotReplaceTheCa() throws Exception {
        CertificateAuthority.create(dir, "prod", Duration.ofDays(3650), NOW);
        byte[] before = Files.readAllBytes(dir.resolve(CertificateAuthority.CA_KEY));
        PkiException e = assertThrows(
                PkiException.class, () -> CertificateAuthority.create(dir, "prod", Duration.ofDays(3650), NOW));
        assertEquals(PkiException.Step.CREATE_CA, e.step());
        assertTrue(java.util.Arrays.equals(before, Files.readAllBytes(dir.resolve(CertificateAuthority.CA_KEY))));
    }

    @Test
    void issuingTwiceUnderOneNameIsRefused() {
        CertificateAuthority ca = CertificateAuthority.create(dir, "prod", Duration.ofDays(3650), NOW);
        ca.issue("host-1", Role.AGENT, Duration.ofDays(30), List.of(), List.of(), dir, NOW);
        PkiException e = assertThrows(
                PkiException.class,
                () -> ca.issue("host-1", Role.COORDINATOR, Duration.ofDays(30), List.of(), List.of(), dir, NOW));
        assertEquals(PkiException.Step.ISSUE, e.step());
    }

    @Test
    void aCertificateOfAnotherClustersCaIsRefused() {
        CertificateAuthority prod =
                CertificateAuthority.create(dir.resolve("prod"), "prod", Duration.ofDays(3650), NOW);
        CertificateAuthority lab = CertificateAuthority.create(dir.resolve("lab"), "lab", Duration.ofDays(3650), NOW);
        Credentials c =
                lab.issue("host-1", Role.AGENT, Duration.ofDays(30), List.of(), List.of(), dir.resolve("l"), NOW);
        PkiException e = assertThrows(
                PkiException.class, () -> Credentials.load(c.certificate(), c.key(), prod.certificateFile(), NOW));
        assertEquals(PkiException.Step.READ, e.step());
    }

    @Test
    void anExpiredCertificateIsRefusedAtLoad() {
        CertificateAuthority ca = CertificateAuthority.create(dir, "prod", Duration.ofDays(3650), NOW);
        Credentials c = ca.issue("host-1", Role.AGENT, Duration.ofDays(30), List.of(), List.of(), dir, NOW);
        Clock later = Clock.offset(NOW, Duration.ofDays(31));
        assertThrows(PkiException.class, () -> Credentials.load(c.certificate(), c.key(), c.ca(), later));
    }

    @Test
    void aKeyThatIsNotTheCertificatesIsRefused() {
        CertificateAuthority ca = CertificateAuthority.create(dir, "prod", Duration.ofDays(3650), NOW);
        Credentials a = ca.issue("host-1", Role.AGENT, Duration.ofDays(30), List.of(), List.of(), dir, NOW);
        Credentials b = ca.issue("host-2", Role.AGENT, Duration.ofDays(30), List.of(), List.of(), dir, NOW);
        assertThrows(PkiException.class, () -> Credentials.load(a.certificate(), b.key(), a.ca(), NOW));
    }

    @Test
    void aCertificateCannotOutliveItsCa() {
        CertificateAuthority ca = CertificateAuthority.create(dir, "prod", Duration.ofDays(10), NOW);
        assertThrows(
                PkiException.class,
                () -> ca.issue("host-1", Role.AGENT, Duration.ofDays(30), List.of(), List.of(), dir, NOW));
    }

    @Test
    void theCaLoadsBackWithItsCluster() {
        CertificateAuthority.create(dir, "prod", Duration.ofDays(3650), NOW);
        assertEquals("prod", CertificateAuthority.load(dir).cluster());
        assertThrows(PkiException.class, () -> CertificateAuthority.load(dir.resolve("nothing-here")));
    }

    @Test
    void expiryIsWarnedAboutAMonthAhead() {
        CertificateAuthority ca = CertificateAuthority.create(dir, "prod", Duration.ofDays(3650), NOW);
        Credentials c = ca.issue("host-1", Role.AGENT, Duration.ofDays(40), List.of(), List.of(), dir, NOW);
        assertEquals("", c.expiryWarning(NOW.instant(), Validity.DEFAULT_WARNING));
        String w = c.expiryWarning(NOW.instant().plus(Duration.ofDays(20)), Validity.DEFAULT_WARNING);
        assertTrue(w.contains("expires at") && w.contains("ferry://prod/agent/host-1"), w);
    }
}
