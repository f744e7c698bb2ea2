package dev.mpsactors.protocol;

import org.apache.pekko.actor.typed.ActorRef;

/**
 * Names one stream of a runtime: its index and its owner. The owner's reference survives the owner's
 * restarts (a restarted owner recreates its native stream), so a handle never goes stale.
 */
public record StreamHandle(int id, ActorRef<StreamProtocol.Command> owner) {
    @Override
    public String toString() {
        return "stream-" + id;
    }
}
