package dev.ferry.pki;

import java.net.URI;
import java.net.URISyntaxException;
import java.security.cert.CertificateParsingException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Optional;
import java.util.regex.Pattern;

/**
 * Who a certificate names: a cluster, a role in it and a name (an agent's host id, a coordinator
 * replica's id, an operator's user name). Carried as one URI subject alternative name,
 * {@code ferry://CLUSTER/ROLE/NAME}, in the spirit of SPIFFE IDs: peers are checked by this
 * identity, not by DNS names or addresses, because hosts move between networks and addresses are
 * what an attacker on the network controls.
 */
public record Identity(String cluster, Role role, String name) {
    public static final String SCHEME = "ferry";
    // Host ids, replica ids and user names: safe in a URI path, a file name and a ZooKeeper node.
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,62}");

    public Identity {
        requireName("cluster", cluster);
        if (role == null) {
            throw new IllegalArgumentException("an identity needs a role");
        }
        requireName("name", name);
    }

    public static void requireName(String what, String value) {
        if (value == null || !NAME.matcher(value).matches()) {
            throw new IllegalArgumentException(what + " '" + value
                    + "' is not a valid name: 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit");
        }
    }

    public URI uri() {
        return URI.create(SCHEME + "://" + cluster + "/" + role.token() + "/" + name);
    }

    @Override
    public String toString() {
        return uri().toString();
    }

    /** Parses {@code ferry://CLUSTER/ROLE/NAME}; anything else is an {@link IllegalArgumentException}. */
    public static Identity parse(String uri) {
        URI u;
        try {
            u = new URI(uri);
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("not an identity URI: " + uri, e);
        }
        if (!SCHEME.equals(u.getScheme()) || u.getHost() == null || u.getPath() == null) {
            throw new IllegalArgumentException("not a ferry identity (ferry://CLUSTER/ROLE/NAME): " + uri);
        }
        String[] parts = u.getPath().split("/", -1);
        if (parts.length != 3 || !parts[0].isEmpty() || u.getQuery() != null || u.getFragment() != null) {
            throw new IllegalArgumentException("not a ferry identity (ferry://CLUSTER/ROLE/NAME): " + uri);
        }
        return new Identity(u.getHost(), Role.parse(parts[1]), parts[2]);
    }

    /**
     * The identity a certificate names. A certificate with no ferry URI, or with more than one,
     * names nobody: a holder must not be able to choose which of two identities it presents.
     */
    public static Optional<Identity> of(X509Certificate certificate) {
        Collection<List<?>> names;
        try {
            names = certificate.getSubjectAlternativeNames();
        } catch (CertificateParsingException e) {
            return Optional.empty();
        }
        if (names == null) {
            return Optional.empty();
        }
        List<Identity> found = new ArrayList<>();
        for (List<?> entry : names) {
            // 6 = uniformResourceIdentifier (RFC 5280 GeneralName).
            if (entry.size() == 2 && Integer.valueOf(6).equals(entry.get(0)) && entry.get(1) instanceof String s) {
                if (s.startsWith(SCHEME + "://")) {
                    try {
                        found.add(parse(s));
                    } catch (IllegalArgumentException e) {
                        return Optional.empty();
                    }
                }
            }
        }
        return found.size() == 1 ? Optional.of(found.getFirst()) : Optional.empty();
    }
}
