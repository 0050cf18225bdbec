package dev.ferry.pki;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `ferry pki revoke`: the CA's signed list, and how a daemon's view of it changes and does not. */
class RevocationTest {
    private static final Clock NOW = Clock.fixed(Instant.parse("2026-12-07T12:00:00Z"), ZoneOffset.UTC);
    private static final Clock LATER = Clock.offset(NOW, Duration.ofHours(1));

    @TempDir
    Path dir;

    private CertificateAuthority ca;
    private X509Certificate alice;
    private X509Certificate aliceAgain;
    private X509Certificate host1;

    @BeforeEach
    void issue() {
        ca = CertificateAuthority.create(dir.resolve("ca"), "prod", Duration.ofDays(3650), NOW);
        alice = ca.issue("alice", Role.OPERATOR, Duration.ofDays(30), List.of(), List.of(), dir.resolve("a"), NOW)
                .loadCertificate();
        aliceAgain = ca.issue("alice", Role.VIEWER, Duration.ofDays(30), List.of(), List.of(), dir.resolve("b"), NOW)
                .loadCertificate();
        host1 = ca.issue("host-1", Role.AGENT, Duration.ofDays(30), List.of(), List.of(), dir.resolve("h"), NOW)
                .loadCertificate();
    }

    @Test
    void revokingANameRevokesEveryCertificateTheCaIssuedToItAndNothingElse() {
        List<X509Certificate> hers = ca.issuedTo("alice", Optional.empty());
        assertEquals(2, hers.size());
        assertEquals(List.of(alice), ca.issuedTo("alice", Optional.of(Role.OPERATOR)));
        RevocationList list = ca.revoke(hers, NOW);
        assertEquals(BigInteger.ONE, list.number());
        assertEquals(Optional.of(NOW.instant()), list.revokedAt(alice));
        assertTrue(list.revokedAt(aliceAgain).isPresent());
        assertEquals(Optional.empty(), list.revokedAt(host1));
        assertEquals(
                list.entries(),
                RevocationList.read(ca.revocationListFile(), ca.certificate()).entries());
    }

    @Test
    void aLaterRevocationKeepsTheEarlierOnesAndCountsUp() {
        ca.revoke(List.of(alice), NOW);
        RevocationList second = ca.revoke(List.of(host1, alice), LATER);
        assertEquals(BigInteger.TWO, second.number());
        assertEquals(2, second.entries().size(), "alice is listed once");
        assertEquals(Optional.of(NOW.instant()), second.revokedAt(alice), "her first revocation time stays");
        assertEquals(Optional.of(LATER.instant()), second.revokedAt(host1));
    }

    @Test
    void aListSignedByAnotherCaIsRefusedAndACertificateOfAnotherCaCannotBeRevoked() {
        CertificateAuthority other =
                CertificateAuthority.create(dir.resolve("other"), "prod", Duration.ofDays(10), NOW);
        X509Certificate foreign = other.issue(
                        "mallory", Role.OPERATOR, Duration.ofDays(5), List.of(), List.of(), dir.resolve("m"), NOW)
                .loadCertificate();
        assertThrows(PkiException.class, () -> ca.revoke(List.of(foreign), NOW));
        other.revoke(List.of(foreign), NOW);
        PkiException e = assertThrows(
                PkiException.class, () -> RevocationList.read(other.revocationListFile(), ca.certificate()));
        assertTrue(e.getMessage().contains("not signed by this cluster's CA"), e.getMessage());
    }

    @Test
    void theWatchSeesANewListAtOnceAndKeepsTheLastGoodOneWhenTheFileGoesBadOrAway() throws Exception {
        Path file = dir.resolve("host").resolve(RevocationList.FILE);
        Files.createDirectories(file.getParent());
        RevocationWatch watch = new RevocationWatch(file, ca.certificate());
        assertEquals(Optional.empty(), watch.revokedAt(alice), "no list yet: nothing revoked");

        ca.revoke(List.of(alice), NOW);
        Files.copy(ca.revocationListFile(), file);
        assertTrue(watch.revokedAt(alice).isPresent(), "read at the next look, no restart");

        ca.revoke(List.of(host1), LATER);
        Path older = dir.resolve("older.pem");
        Files.copy(file, older);
        Files.copy(ca.revocationListFile(), file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        assertTrue(watch.revokedAt(host1).isPresent());

        // An older list (a stale copy) does not un-revoke host-1.
        Files.copy(older, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        assertTrue(watch.revokedAt(host1).isPresent());
        // Nor does garbage, or deleting the file.
        Files.writeString(file, "-----BEGIN X509 CRL-----\nnot a list\n-----END X509 CRL-----\n");
        assertTrue(watch.revokedAt(host1).isPresent());
        Files.delete(file);
        assertTrue(watch.revokedAt(host1).isPresent());
        assertTrue(watch.revokedAt(alice).isPresent());
        assertEquals(Optional.empty(), watch.revokedAt(aliceAgain));
    }

    @Test
    void credentialsHonourTheListBesideTheirCaUnlessToldOtherwise() {
        Credentials c =
                ca.issue("host-2", Role.AGENT, Duration.ofDays(30), List.of(), List.of(), dir.resolve("x"), NOW);
        assertEquals(c.ca().toAbsolutePath().resolveSibling("crl.pem"), c.revocationList());
        Path elsewhere = dir.resolve("elsewhere.pem");
        assertEquals(elsewhere, c.withRevocationList(elsewhere).revocationList());
        CredentialFiles f = CredentialFiles.in(dir.resolve("x"), "host-2", elsewhere);
        assertEquals(
                List.of(
                        "--cert", dir.resolve("x/host-2.crt").toString(),
                        "--key", dir.resolve("x/host-2.key").toString(),
                        "--ca", dir.resolve("x/ca.crt").toString(),
                        "--crl", elsewhere.toString()),
                f.flags());
        assertEquals(elsewhere, f.load(NOW).revocationList());
    }
}
