package dev.ferry.pki;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.Objects;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The revocation list as a daemon sees it: the file is looked at (one stat) on every TLS
 * handshake and re-read when it changed, so `ferry pki revoke` takes effect at the next
 * connection without a restart.
 *
 * <p>It fails towards keeping revocations: a list that does not verify, is older (lower number)
 * than one already read, or disappears, leaves the last good list in force and is logged. A
 * daemon that never saw a list accepts every certificate the CA issued, as before revocation
 * existed.
 */
public final class RevocationWatch {
    private static final Logger log = LoggerFactory.getLogger(RevocationWatch.class);

    private final Path file;
    private final X509Certificate ca;
    private Optional<RevocationList> current = Optional.empty();
    private Object seenKey;
    private FileTime seenModified;
    private long seenSize = -1;

    public RevocationWatch(Path file, X509Certificate ca) {
        this.file = Objects.requireNonNull(file, "file");
        this.ca = Objects.requireNonNull(ca, "ca");
    }

    public Path file() {
        return file;
    }

    /** When {@code cert} was revoked, by the newest good list; empty when it was not. */
    public Optional<Instant> revokedAt(X509Certificate cert) {
        return list().flatMap(l -> l.revokedAt(cert));
    }

    /** The list in force now (re-read first if the file changed). */
    public synchronized Optional<RevocationList> list() {
        BasicFileAttributes a;
        try {
            a = Files.readAttributes(file, BasicFileAttributes.class);
        } catch (NoSuchFileException e) {
            if (current.isPresent() && seenModified != null) {
                log.error(
                        "revocation list {} disappeared; still refusing the {} certificate(s) it named",
                        file,
                        current.get().entries().size());
                seenModified = null;
            }
            return current;
        } catch (IOException e) {
            log.error("cannot look at revocation list {}: {}; keeping the last one read", file, e.toString());
            return current;
        }
        if (Objects.equals(a.fileKey(), seenKey) && a.lastModifiedTime().equals(seenModified) && a.size() == seenSize) {
            return current;
        }
        seenKey = a.fileKey();
        seenModified = a.lastModifiedTime();
        seenSize = a.size();
        try {
            RevocationList read = RevocationList.read(file, ca);
            if (current.isPresent() && read.number().compareTo(current.get().number()) < 0) {
                log.error(
                        "revocation list {} is #{}, older than #{} already in force; ignoring it",
                        file,
                        read.number(),
                        current.get().number());
                return current;
            }
            current = Optional.of(read);
            log.info("revocation list {}: {}", file, read);
        } catch (PkiException e) {
            log.error("{}; keeping the last good revocation list", e.getMessage());
        }
        return current;
    }
}
