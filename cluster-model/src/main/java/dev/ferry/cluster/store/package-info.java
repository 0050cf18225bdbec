/**
 * How the cluster lives in ZooKeeper: the paths ({@link dev.ferry.cluster.store.ClusterPaths}),
 * the records and their schema check ({@link dev.ferry.cluster.store.Records}), typed reads and
 * version-checked writes ({@link dev.ferry.cluster.store.ClusterStore}), Curator clients built one
 * way ({@link dev.ferry.cluster.store.ZkClients}), and the single embedded server of local clusters
 * ({@link dev.ferry.cluster.store.EmbeddedZooKeeper}).
 */
package dev.ferry.cluster.store;
