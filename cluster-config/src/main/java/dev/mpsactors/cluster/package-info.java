/**
 * Pekko Cluster: models served as sharded entities across nodes, the node and client command lines, and their configuration.
 */
package dev.mpsactors.cluster;
