/**
 * The coordinator's client: finds the leading replica (through ZooKeeper or a list of endpoints),
 * follows "not the leader" answers, and retries across a leader change with the same request id,
 * so a retried request runs once.
 */
package dev.ferry.cluster.client;
