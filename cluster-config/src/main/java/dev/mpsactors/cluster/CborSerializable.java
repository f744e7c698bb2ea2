package dev.mpsactors.cluster;

/**
 * Marks a message that crosses nodes: mps-actors-cluster.conf binds it to Pekko's jackson-cbor
 * serializer. Java serialization is switched off, so a cross-node message without this marker fails to
 * send instead of silently falling back to it.
 */
public interface CborSerializable {}
