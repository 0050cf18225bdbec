package dev.ferry.cluster.store;

/**
 * A record as read, with what a version-checked write needs: the node's data version, and for
 * ephemeral nodes the session that owns it (0 for persistent nodes).
 */
public record Versioned<T>(String path, T value, int version, long ephemeralOwner) {}
