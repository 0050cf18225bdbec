package dev.ferry.cli;

import dev.ferry.cluster.client.CoordinatorCallException;
import dev.ferry.cluster.client.CoordinatorClient;
import dev.ferry.pki.CertificateExpiry;
import dev.ferry.pki.Role;
import dev.ferry.proto.coordinator.ClusterStatus;
import dev.ferry.proto.coordinator.HostView;
import java.io.PrintStream;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The certificates of a cluster as `ferry cluster status` shows them: the caller's own, the
 * cluster CA, every coordinator replica's (each replica reports its own: coordinators have no
 * registration) and every live host's (from its registration), each with its expiry and, when it
 * expires within {@link TlsOptions#WARN_WITHIN} or has expired, a warning that says what to do.
 * A certificate that runs out takes its holder out of the cluster at its next handshake, so the
 * operator must hear about it where they look every day, not only in a daemon's start-up log.
 */
record CertificateReport(List<Row> rows) {
    /**
     * One certificate.
     *
     * @param holder who holds it, for people ("agent host-1", "coordinator 127.0.0.1:7000")
     * @param role the role to issue a new one for (null for the CA)
     * @param name the name to issue a new one for (null when not known)
     * @param notAfter when it expires; null when not known ({@code unknown} says why)
     */
    record Row(String holder, Role role, String name, Instant notAfter, String unknown, String warning) {
        Map<String, Object> json() {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("holder", holder);
            m.put("role", role == null ? "ca" : role.token());
            if (name != null) {
                m.put("name", name);
            }
            if (notAfter != null) {
                m.put("notAfter", notAfter.toString());
                m.put("notAfterMs", notAfter.toEpochMilli());
            } else {
                m.put("unknown", unknown);
            }
            if (!warning.isEmpty()) {
                m.put("warning", warning);
            }
            return m;
        }
    }

    /** Asks every replica for its certificate and reads the hosts' from {@code hosts}. */
    static CertificateReport gather(CoordinatorClient c, ClusterStatus status, List<HostView> hosts, Instant now) {
        Builder b = new Builder(now, TlsOptions.WARN_WITHIN);
        Optional<CertificateExpiry> own = c.transport().expiry();
        Instant ca = own.map(CertificateExpiry::caNotAfter).orElse(null);
        if (own.isPresent()) {
            CertificateExpiry e = own.get();
            b.add("the cluster CA", null, null, e.caNotAfter(), "");
            b.add(
                    e.identity().role().token() + " " + e.identity().name() + " (you)",
                    e.identity().role(),
                    e.identity().name(),
                    e.notAfter(),
                    "");
        }
        for (String endpoint : status.getCoordinatorsList()) {
            String holder = "coordinator " + endpoint;
            ClusterStatus mine;
            try {
                mine = endpoint.equals(status.getAnsweredBy()) ? status : c.statusOf(endpoint);
            } catch (CoordinatorCallException e) {
                b.add(holder, Role.COORDINATOR, null, null, "no answer: " + e.getMessage());
                continue;
            }
            if (mine.getCertificateNotAfterMs() == 0) {
                b.add(holder, Role.COORDINATOR, null, null, "runs without TLS");
                continue;
            }
            String name = nameOf(mine.getCertificateIdentity());
            b.add(
                    holder + (name == null ? "" : " (" + name + ")"),
                    Role.COORDINATOR,
                    name,
                    Instant.ofEpochMilli(mine.getCertificateNotAfterMs()),
                    "");
            ca = b.caOf(holder, ca, mine.getCaNotAfterMs());
        }
        for (HostView h : hosts) {
            if (!h.getAlive()) {
                continue; // no registration: nothing known about its certificate, and nothing it can do now
            }
            String holder = "agent " + h.getId();
            if (h.getCertificateNotAfterMs() == 0) {
                b.add(holder, Role.AGENT, h.getId(), null, "runs without TLS (or an agent too old to report it)");
                continue;
            }
            b.add(holder, Role.AGENT, h.getId(), Instant.ofEpochMilli(h.getCertificateNotAfterMs()), "");
            ca = b.caOf(holder, ca, h.getCaNotAfterMs());
        }
        return new CertificateReport(List.copyOf(b.rows));
    }

    /** The NAME of {@code ferry://CLUSTER/ROLE/NAME}, or null. */
    private static String nameOf(String identity) {
        try {
            return dev.ferry.pki.Identity.parse(identity).name();
        } catch (IllegalArgumentException e) {
            return null;
        }
    }

    private static final class Builder {
        private final Instant now;
        private final Duration within;
        private final List<Row> rows = new ArrayList<>();

        Builder(Instant now, Duration within) {
            this.now = now;
            this.within = within;
        }

        void add(String holder, Role role, String name, Instant notAfter, String unknown) {
            rows.add(new Row(holder, role, name, notAfter, unknown, warning(holder, role, name, notAfter)));
        }

        /**
         * The CA as {@code holder} trusts it: a row of its own when it is not the CA seen so far
         * (a holder still on an older CA copy); returns the CA's expiry to compare the next with.
         */
        Instant caOf(String holder, Instant seen, long caNotAfterMs) {
            Instant theirs = Instant.ofEpochMilli(caNotAfterMs);
            if (caNotAfterMs == 0) {
                return seen;
            }
            if (seen == null) {
                add("the cluster CA", null, null, theirs, "");
                return theirs;
            }
            // Certificates carry whole seconds; the caller's copy went through no milliseconds.
            if (seen.getEpochSecond() != theirs.getEpochSecond()) {
                add("the CA that " + holder + " trusts", null, null, theirs, "");
            }
            return seen;
        }

        private String warning(String holder, Role role, String name, Instant notAfter) {
            if (notAfter == null) {
                return "";
            }
            String when = switch (CertificateExpiry.validity(notAfter, now, within)) {
                case VALID, NOT_YET_VALID -> null;
                case EXPIRED -> "expired at " + notAfter;
                case EXPIRING_SOON ->
                    "expires at " + notAfter + ", in "
                            + Duration.between(now, notAfter).toDays() + " days";
            };
            if (when == null) {
                return "";
            }
            if (role == null) {
                return "WARNING: " + holder + " " + when + ": every certificate of the cluster ends with it. "
                        + "Create a new CA (ferry pki init), issue every holder a certificate of it (ferry pki issue) "
                        + "and restart them all (docs/SECURITY.md, Expiry and renewal)";
            }
            String issue = "ferry pki issue " + (name == null ? "NAME" : name) + " --role " + role.token()
                    + " --dir CA_DIR --out NEW_DIR";
            String restart = switch (role) {
                case AGENT -> "restart the agent of " + name + " with it (its guests keep running)";
                case COORDINATOR -> "restart that replica with it";
                default -> "use it (--cert/--key/--ca or $FERRY_CERT/$FERRY_KEY/$FERRY_CA)";
            };
            return "WARNING: the certificate of " + holder + " " + when + ": issue a new one (" + issue + ") and "
                    + restart;
        }
    }

    /** The warnings, one per certificate that expires soon or has expired. */
    List<String> warnings() {
        return rows.stream().map(Row::warning).filter(w -> !w.isEmpty()).toList();
    }

    List<Map<String, Object>> json() {
        return rows.stream().map(Row::json).toList();
    }

    void print(PrintStream out) {
        if (rows.stream().allMatch(r -> r.notAfter() == null)) {
            out.println("certificates none known (the cluster runs without TLS)");
            return;
        }
        out.println("certificates (warned " + TlsOptions.WARN_WITHIN.toDays() + " days before expiry)");
        int width = rows.stream().mapToInt(r -> r.holder().length()).max().orElse(0);
        for (Row r : rows) {
            String state = r.notAfter() == null
                    ? "unknown: " + r.unknown()
                    : "expires " + r.notAfter() + (r.warning().isEmpty() ? "" : "  <- see WARNING below");
            out.printf("  %-" + width + "s  %s%n", r.holder(), state);
        }
        for (String w : warnings()) {
            out.println(w);
        }
    }
}
