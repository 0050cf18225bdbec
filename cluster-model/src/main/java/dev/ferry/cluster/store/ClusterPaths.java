package dev.ferry.cluster.store;

import java.util.regex.Pattern;

/**
 * The ZooKeeper layout of one cluster, relative to its namespace {@code /ferry/<cluster>}
 * (cluster.proto describes each record).
 */
public final class ClusterPaths {
    private ClusterPaths() {}

    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,62}");
    // Intent ids are request ids (UUIDs) or built from them with a VM name: longer.
    private static final Pattern INTENT_ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.-]{0,199}");

    /** Ephemeral, one per live agent. */
    public static final String HOSTS = "/hosts";
    /** Persistent, one per host in maintenance. */
    public static final String MAINTENANCE = "/maintenance";
    /** Persistent VM records. */
    public static final String VMS = "/vms";
    /** Ephemeral run locks, one per running VM, owned by the running host's session. */
    public static final String RUNNING = "/running";
    /** Persistent intents. */
    public static final String INTENTS = "/intents";
    /** The coordinators' leader latch. */
    public static final String LEADER = "/leader";
    /** Persistent: the newest coordinator leader term (the leaders' fencing token). */
    public static final String TERM = "/term";

    /** Persistent: the records of finished migrations (`ferry report`), kept by the leader. */
    public static final String REPORTS = "/reports";

    /** The Curator namespace of a cluster (no leading slash). */
    public static String namespace(String cluster) {
        checkName("cluster name", cluster);
        return "ferry/" + cluster;
    }

    public static String host(String id) {
        return HOSTS + "/" + checkName("host id", id);
    }

    public static String maintenance(String host) {
        return MAINTENANCE + "/" + checkName("host id", host);
    }

    public static String vm(String name) {
        return VMS + "/" + checkName("VM name", name);
    }

    public static String running(String vm) {
        return RUNNING + "/" + checkName("VM name", vm);
    }

    public static String intent(String id) {
        return INTENTS + "/" + checkIntentId(id);
    }

    public static String report(ReportName name) {
        return REPORTS + "/" + name;
    }

    /**
     * A kept report's node name: {@code FINISHED~VM~ID}, the finish time (Unix ms, zero-padded) first
     * so that names sort oldest first and the count and age bounds need no read of the records.
     */
    public record ReportName(long finishedAtMs, String vm, String migrationId) {
        public ReportName {
            if (finishedAtMs < 0) {
                throw new IllegalArgumentException("a report's finish time must not be negative");
            }
            checkName("VM name", vm);
            checkIntentId(migrationId);
        }

        /** The name of a node Ferry wrote, or empty for any other (never fatal: a stray node is skipped). */
        public static java.util.Optional<ReportName> parse(String child) {
            String[] parts = child.split("~", -1);
            if (parts.length != 3 || parts[0].length() != 15) {
                return java.util.Optional.empty();
            }
            try {
                return java.util.Optional.of(new ReportName(Long.parseLong(parts[0]), parts[1], parts[2]));
            } catch (IllegalArgumentException e) {
                return java.util.Optional.empty();
            }
        }

        @Override
        public String toString() {
            return String.format("%015d~%s~%s", finishedAtMs, vm, migrationId);
        }
    }

    /** Request ids name intents: 1-200 letters, digits, '.', '_' or '-'. */
    public static String checkIntentId(String id) {
        if (id == null || !INTENT_ID.matcher(id).matches()) {
            throw new IllegalArgumentException(
                    "request id must be 1-200 letters, digits, '.', '_' or '-', got '" + id + "'");
        }
        return id;
    }

    /** Names become path segments: letters, digits, '.', '_', '-', at most 63, not starting with a dot. */
    public static String checkName(String what, String name) {
        if (name == null || !NAME.matcher(name).matches()) {
            throw new IllegalArgumentException(
                    what + " must be 1-63 letters, digits, '.', '_' or '-' starting with a letter " + "or digit, got '"
                            + name + "'");
        }
        return name;
    }
}
