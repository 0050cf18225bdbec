/**
 * The cluster's decisions as pure functions, each with unit tests: when a host that lost
 * ZooKeeper must have fenced ({@link dev.ferry.cluster.policy.FencePolicy}), where a VM goes
 * ({@link dev.ferry.cluster.policy.Placement}), and in what order a failed host's VMs restart
 * and whether they may ({@link dev.ferry.cluster.policy.RestartPolicy}).
 */
package dev.ferry.cluster.policy;
