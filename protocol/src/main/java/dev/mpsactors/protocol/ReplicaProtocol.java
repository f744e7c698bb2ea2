package dev.mpsactors.protocol;

import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Messages of a model served from several devices (its router speaks {@link InferenceProtocol} to callers):
 * replicas joining and leaving, sent by the host runtime, and the per-device routing counters.
 */
public final class ReplicaProtocol {
    private ReplicaProtocol() {}

    /** The model's replica on device {@code ordinal} is running (again) as {@code replica}. */
    public record ReplicaUp(int ordinal, ActorRef<InferenceProtocol.Command> replica)
            implements InferenceProtocol.Internal {}

    /** Device {@code ordinal}'s runtime stopped: what its replica held is routed to the others. */
    public record ReplicaDown(int ordinal) implements InferenceProtocol.Internal {}

    /** Answered with {@link ReplicaStats} by a router; a single model actor ignores it. */
    public record GetReplicaStats(ActorRef<ReplicaStats> replyTo) implements InferenceProtocol.Internal {}

    /**
     * @param inFlight requests handed to a replica and not yet answered
     * @param retried  requests moved to another replica (a retryable failure, an overload, a replica gone)
     * @param stale    replies dropped because their request had already been moved away
     */
    public record ReplicaStats(String model, List<ReplicaState> replicas, long inFlight, long retried, long stale) {
        public ReplicaStats {
            replicas = List.copyOf(replicas);
        }

        /** The entry of device {@code ordinal}; throws if the model has no replica there. */
        public ReplicaState device(int ordinal) {
            return replicas.stream().filter(r -> r.ordinal() == ordinal).findFirst()
                    .orElseThrow(() -> new IllegalArgumentException("no replica of " + model + " on device " + ordinal));
        }
    }

    /**
     * @param up           the replica is running
     * @param routed       requests handed to it (retries included)
     * @param outstanding  requests it holds now
     * @param outstandingTokens tokens of those requests
     * @param succeeded    results it delivered
     * @param failed       failures it delivered that were passed to the caller
     * @param retriedAway  requests taken from it and tried elsewhere
     * @param incarnations how often a replica started on this device (1 + restarts)
     */
    public record ReplicaState(int ordinal, boolean up, long routed, long outstanding, long outstandingTokens,
                               long succeeded, long failed, long retriedAway, int incarnations) {}
}
