package dev.ferry.cluster.store;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import org.apache.curator.framework.CuratorFramework;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.ACL;

/**
 * Checks, at a coordinator's start, that the cluster's namespace and layout carry the cluster's
 * ACLs ({@link ZkAcls}), and repairs them on request.
 *
 * <p>Why: ZooKeeper sets a node's ACL when it is created, and {@code /ferry} lets anyone create
 * children (clusters of other CAs share it). So {@code /ferry/NAME} may already exist with open
 * ACLs when cluster NAME first starts securely: created by someone else, or by the same cluster
 * run with {@code --insecure} before. Nodes created under an open parent by anyone stay theirs.
 * Starting on such a tree would give every ZooKeeper client the power the ACLs exist to withhold,
 * silently; the coordinator refuses instead, naming each node, and {@code --repair-acls} (after
 * the operator checked what is in the tree) sets the cluster's ACLs on every node of it.
 */
public final class AclAudit {
    /** A node whose ACL is not the cluster's. */
    public record Finding(String path, List<ACL> actual, List<ACL> expected) {
        @Override
        public String toString() {
            return path + " has " + describe(actual) + ", not " + describe(expected);
        }
    }

    private AclAudit() {}

    /** The nodes checked: the namespace itself and the layout's top-level nodes. */
    static List<String> checkedPaths() {
        return List.of(
                "/",
                ClusterPaths.HOSTS,
                ClusterPaths.MAINTENANCE,
                ClusterPaths.VMS,
                ClusterPaths.RUNNING,
                ClusterPaths.INTENTS,
                ClusterPaths.REPORTS,
                ClusterPaths.LEADER);
    }

    /** Findings on the namespace and layout of {@code namespaced}'s cluster; empty when all is as it should be. */
    public static List<Finding> audit(CuratorFramework namespaced, ZkAcls acls) throws Exception {
        List<Finding> out = new ArrayList<>();
        for (String p : checkedPaths()) {
            List<ACL> actual;
            try {
                actual = namespaced.getACL().forPath(p);
            } catch (KeeperException.NoNodeException e) {
                continue; // the layout creates it, with the right ACL
            }
            List<ACL> expected = acls.getAclForPath(p.equals("/") ? acls.root() : p);
            if (!new HashSet<>(actual).equals(new HashSet<>(expected))) {
                out.add(new Finding(acls.root() + (p.equals("/") ? "" : p), actual, expected));
            }
        }
        return out;
    }

    /**
     * Sets the cluster's ACL on every node of the cluster's tree (namespace included), depth first;
     * returns how many nodes it changed. Needs ADMIN on each node, which open ACLs grant.
     */
    public static int repair(CuratorFramework namespaced, ZkAcls acls) throws Exception {
        return repair(namespaced, acls, "/");
    }

    private static int repair(CuratorFramework zk, ZkAcls acls, String path) throws Exception {
        int changed = 0;
        List<String> children;
        try {
            children = zk.getChildren().forPath(path);
        } catch (KeeperException.NoNodeException e) {
            return 0;
        }
        for (String c : children) {
            changed += repair(zk, acls, (path.equals("/") ? "" : path) + "/" + c);
        }
        List<ACL> expected = acls.getAclForPath(path.equals("/") ? acls.root() : path);
        List<ACL> actual = zk.getACL().forPath(path);
        if (!new HashSet<>(actual).equals(new HashSet<>(expected))) {
            zk.setACL().withACL(expected).forPath(path);
            changed++;
        }
        return changed;
    }

    static String describe(List<ACL> acl) {
        List<String> parts = new ArrayList<>();
        for (ACL a : acl) {
            parts.add(a.getId().getScheme() + ":" + a.getId().getId() + "=" + perms(a.getPerms()));
        }
        return parts.toString();
    }

    private static String perms(int p) {
        StringBuilder b = new StringBuilder();
        String letters = "rwcda";
        for (int i = 0; i < letters.length(); i++) {
            if ((p & (1 << i)) != 0) {
                b.append(letters.charAt(i));
            }
        }
        return b.isEmpty() ? "none" : b.toString();
    }
}
