package dev.ferry.pki;

import java.util.Locale;

/**
 * What a certificate's holder is to the cluster. The role is part of the identity the cluster CA
 * signs (see {@link Identity}), so a peer's role comes from its verified certificate, never from
 * anything it says over the connection.
 */
public enum Role {
    /** A host's agent: runs guests, streams memory to other agents, keeps its membership. */
    AGENT,
    /** A coordinator replica: orders agents, answers operators and agents' outage questions. */
    COORDINATOR,
    /** A person or tool that changes the cluster (create, migrate, drain, stop, delete). */
    OPERATOR,
    /** A person or tool that may only look (list, status, watch). */
    VIEWER,
    /**
     * A server of the cluster's ZooKeeper ensemble: presents this certificate to Ferry's ZooKeeper
     * clients (which also check that it names the address they dialled). It is granted nothing in
     * Ferry's API nor in the cluster's znodes.
     */
    ZOOKEEPER;

    /** The role's name as it appears in identities and on the command line. */
    public String token() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static Role parse(String token) {
        for (Role r : values()) {
            if (r.token().equals(token)) {
                return r;
            }
        }
        throw new IllegalArgumentException(
                "unknown role '" + token + "' (one of agent, coordinator, operator, viewer, zookeeper)");
    }
}
