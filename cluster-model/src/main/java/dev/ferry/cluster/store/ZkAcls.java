package dev.ferry.cluster.store;

import dev.ferry.pki.CertificateAuthority;
import dev.ferry.pki.Role;
import java.util.ArrayList;
import java.util.List;
import org.apache.curator.framework.api.ACLProvider;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooDefs.Perms;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Id;

/**
 * The ACLs of every znode Ferry creates in a secure cluster, by path; Curator asks this for every
 * create, including the namespace's parents and recipes' nodes (the leader latch). Nobody
 * unauthenticated ({@code world:anyone}) has any permission in the cluster's tree. Ids are
 * ZooKeeper's {@code x509} ids of the cluster's roles (one subject per role and cluster, see {@link
 * CertificateAuthority#zooKeeperId}).
 *
 * <p>Below the cluster's namespace ({@code /ferry/CLUSTER}):
 *
 * <ul>
 *   <li>coordinators: every permission everywhere (they create the layout, VM records, intents,
 *       the leader latch and term, and clean up after failed hosts);
 *   <li>agents: read everywhere; create in /hosts (their registration) and write registrations
 *       (an agent that resumed its session rewrites its own); create and delete in /running (run
 *       locks: taken at start, handed over by the migration target's commit); write VM records
 *       (the ownership commit and its veto). Nothing else: no intents, maintenance, leader or
 *       term, no new top-level nodes;
 *   <li>operators and viewers: read everywhere (the CLI finds the coordinators through the leader
 *       latch); every change goes through a coordinator's API, which authorizes it per identity.
 * </ul>
 *
 * <p>ZooKeeper names a client by role, not by host (its x509 ids match exactly, and per-host ids
 * could not be named in ACLs of nodes created before the host joined), and its create and delete
 * permissions are on the parent: an agent can rewrite another host's registration or delete
 * another host's run lock. docs/SECURITY.md says what that can and cannot do.
 *
 * <p>{@code /ferry}, which clusters sharing an ensemble share, grants only creating children (to
 * anyone: a cluster of another CA must be able to create its namespace; ZooKeeper's root grants as
 * much by default) and everything to this cluster's coordinators; nobody can list it anonymously.
 */
public final class ZkAcls implements ACLProvider {
    private static final String PARENT = "/ferry";

    private final String cluster;
    private final String root;

    public ZkAcls(String cluster) {
        this.cluster = cluster;
        this.root = "/" + ClusterPaths.namespace(cluster);
    }

    /** The cluster's namespace node, {@code /ferry/CLUSTER}. */
    public String root() {
        return root;
    }

    /** The id every holder of {@code role} in {@code cluster} authenticates as. */
    public static Id role(String cluster, Role role) {
        return new Id("x509", CertificateAuthority.zooKeeperId(cluster, role));
    }

    @Override
    public List<ACL> getDefaultAcl() {
        return mutable(List.of(new ACL(Perms.ALL, role(cluster, Role.COORDINATOR))));
    }

    @Override
    public List<ACL> getAclForPath(String path) {
        return mutable(aclForPath(path));
    }

    // ZooKeeper's client asks the list whether it contains null, which immutable lists refuse to answer.
    private static List<ACL> mutable(List<ACL> acl) {
        return new ArrayList<>(acl);
    }

    private List<ACL> aclForPath(String path) {
        if (path == null) {
            return getDefaultAcl();
        }
        if (path.equals(PARENT)) {
            return List.of(
                    new ACL(Perms.ALL, role(cluster, Role.COORDINATOR)),
                    new ACL(Perms.CREATE, ZooDefs.Ids.ANYONE_ID_UNSAFE));
        }
        // Curator passes namespaced paths for plain creates, and paths within the namespace for
        // creates in a transaction; nothing Ferry creates lies outside its namespace but /ferry.
        String rel = path.equals(root) || path.startsWith(root + "/") ? path.substring(root.length()) : path;
        int agents = Perms.READ;
        if (rel.equals(ClusterPaths.HOSTS)) {
            agents |= Perms.CREATE;
        } else if (rel.startsWith(ClusterPaths.HOSTS + "/")) {
            agents |= Perms.WRITE;
        } else if (rel.equals(ClusterPaths.RUNNING)) {
            agents |= Perms.CREATE | Perms.DELETE;
        } else if (rel.startsWith(ClusterPaths.VMS + "/")) {
            agents |= Perms.WRITE;
        }
        return List.of(
                new ACL(Perms.ALL, role(cluster, Role.COORDINATOR)),
                new ACL(agents, role(cluster, Role.AGENT)),
                new ACL(Perms.READ, role(cluster, Role.OPERATOR)),
                new ACL(Perms.READ, role(cluster, Role.VIEWER)));
    }
}
