/**
 * The agent's side of the cluster: {@link dev.ferry.cluster.member.ClusterMember} (session,
 * registration, self-fencing), the run locks of VMs ({@code ZkOwnership}) and the live-migration
 * commit in ZooKeeper ({@code ZkOwnershipCommit}). The CLI injects them into the agent, so the
 * migration-agent module never depends on ZooKeeper.
 */
package dev.ferry.cluster.member;
