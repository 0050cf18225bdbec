package dev.ferry.rpc;

import dev.ferry.pki.Identity;
import dev.ferry.pki.Role;
import java.util.EnumSet;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;

/**
 * Whom a channel may talk to: the identity the server's certificate must name. A migration lane
 * names the one target host the coordinator chose (a certificate of any other host, even of this
 * cluster, fails the handshake); a client of the coordinator accepts any coordinator replica.
 * Under {@link TransportSecurity.Plaintext} nothing is checked.
 */
public record PeerRequirement(Set<Role> roles, Optional<String> name) {
    public PeerRequirement {
        Objects.requireNonNull(roles, "roles");
        Objects.requireNonNull(name, "name");
        if (roles.isEmpty()) {
            throw new IllegalArgumentException("a peer requirement needs at least one role");
        }
        roles = Set.copyOf(roles);
    }

    /** Exactly the agent of host {@code hostId}. */
    public static PeerRequirement agent(String hostId) {
        Identity.requireName("host id", hostId);
        return new PeerRequirement(EnumSet.of(Role.AGENT), Optional.of(hostId));
    }

    /** Any coordinator replica of the cluster. */
    public static PeerRequirement anyCoordinator() {
        return new PeerRequirement(EnumSet.of(Role.COORDINATOR), Optional.empty());
    }

    /** Any holder of one of {@code roles} (tests, tools that talk to whatever they are given). */
    public static PeerRequirement anyOf(Role first, Role... rest) {
        return new PeerRequirement(EnumSet.of(first, rest), Optional.empty());
    }

    /** Whether {@code peer}, already known to be of this cluster, is acceptable. */
    public boolean accepts(Identity peer) {
        return roles.contains(peer.role()) && name.map(peer.name()::equals).orElse(true);
    }

    @Override
    public String toString() {
        String who = roles.stream()
                .map(Role::token)
                .sorted()
                .reduce((a, b) -> a + "|" + b)
                .orElseThrow();
        return name.map(n -> who + " " + n).orElse("any " + who);
    }
}
