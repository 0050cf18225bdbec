/**
 * The coordinator's scale benchmark: a real ZooKeeper server in this process, thousands of
 * simulated agents (each its own ZooKeeper session that registers its host and holds its VMs' run
 * locks, and answers the coordinator's calls by taking run locks like a real agent), and a real
 * coordinator. `ferry bench coordinator` runs it.
 */
package dev.ferry.cluster.bench;
