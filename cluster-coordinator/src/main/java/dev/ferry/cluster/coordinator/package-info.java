/**
 * The cluster coordinator: a leader-elected service ({@link dev.ferry.cluster.coordinator.Coordinator},
 * Curator LeaderLatch) whose leader, for one term at a time, carries out intents: VM lifecycle,
 * live migration, drain, and restarts after host failure; and reconciles desired against actual
 * state from ZooKeeper. Every replica serves the gRPC API; non-leaders point to the leader.
 */
package dev.ferry.cluster.coordinator;
