/**
 * Typesafe Config and Pekko Cluster setup for running models as sharded entities across nodes (issue 7 fills it).
 */
package dev.mpsactors.cluster;
