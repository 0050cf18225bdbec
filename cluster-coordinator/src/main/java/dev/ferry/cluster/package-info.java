/**
 * The Ferry cluster on ZooKeeper: {@code store} (layout, records, typed access), {@code policy}
 * (pure decisions: placement, fence deadline, restart order), {@code member} (the agent's side:
 * registration, run locks, the ownership commit, fencing), {@code coordinator} (the leader-elected
 * service: failover, drain, intents, the gRPC API) and {@code client} (the coordinator's client).
 * docs/ARCHITECTURE.md, "Cluster", tells the whole story.
 */
package dev.ferry.cluster;
