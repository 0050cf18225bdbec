/**
 * The agent's side of the cluster, which runs in the agent process: {@link
 * dev.ferry.agent.cluster.ClusterMember} (session, registration, self-fencing), the run locks of
 * VMs ({@code ZkOwnership}) and the live-migration commit in ZooKeeper ({@code ZkOwnershipCommit}).
 * The engine ({@code dev.ferry.migration}) and the agent daemon ({@code dev.ferry.agent}) know
 * nothing of ZooKeeper: {@link dev.ferry.agent.cluster.ClusterAgent} injects these through {@link
 * dev.ferry.agent.Ownership} and {@link dev.ferry.agent.CommitProvider}.
 */
package dev.ferry.agent.cluster;
