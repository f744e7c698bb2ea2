package dev.mpsactors.cluster;

import dev.mpsactors.cluster.ModelEntity.ClusterInfer;
import dev.mpsactors.cluster.ModelEntity.ClusterInferReply;
import dev.mpsactors.cluster.ModelEntity.ClusterInferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;

/**
 * The client API of a cluster: {@link #infer} sends a request to one replica of a model, wherever sharding
 * placed it, and completes with its result. Usable from plain Java and from actors (pipe the stage to
 * yourself); nothing here blocks.
 *
 * <p>Requests are spread over the model's replicas round robin. An attempt that times out, or that the
 * replica answers with a retryable failure (it stopped, moved, or lost its model actor), is retried with
 * the same request id (each attempt under its own wire id) on the next replica, up to {@code attempts}
 * times; after the last, or at once on a
 * failure every replica would give (a bad request, a model that cannot load), the stage fails with a
 * {@link ClusterInferenceException}. A caller therefore never waits longer than about
 * attempts x (attempt-timeout + retry-backoff).
 *
 * <p>Retrying is safe because inference is a pure function of its inputs: an attempt that timed out may
 * still be computed on the lost or slow replica, but it changes nothing anywhere, and its late reply is
 * counted and dropped by the {@link ClusterCaller} that made the attempt. The caller sees exactly one outcome
 * per call; {@link #stats()} shows late and duplicate replies.
 */
public final class ClusterInference {
    private static final AtomicLong INSTANCES = new AtomicLong();

    private final ActorSystem<?> system;
    private final ClusterSharding sharding;
    private final ClusterSettings settings;
    private final ClusterCaller.Counters counters = new ClusterCaller.Counters();
    private final ActorRef<ClusterCaller.Command> caller;
    // Longer than any call can take: the caller answers every call within attempts x (timeout + backoff).
    private final Duration callBound;

    public ClusterInference(ActorSystem<?> system, ClusterSettings settings) {
        this.system = system;
        this.sharding = ClusterSharding.get(system);
        this.settings = settings;
        this.caller = system.systemActorOf(ClusterCaller.create(settings, counters),
                "cluster-caller-" + INSTANCES.incrementAndGet(), Props.empty());
        this.callBound = settings.attemptTimeout().plus(settings.retryBackoff()).multipliedBy(settings.attempts())
                .plusSeconds(30);
    }

    /** Completes with the model's result, or fails with a {@link ClusterInferenceException}. */
    public CompletionStage<ClusterInferResult> infer(String model, String requestId, InferenceInputs inputs) {
        CompletableFuture<ClusterInferResult> result = new CompletableFuture<>();
        AskPattern.<ClusterCaller.Command, ClusterCaller.Outcome>ask(caller,
                        replyTo -> new ClusterCaller.Call(model, requestId, inputs, replyTo), callBound,
                        system.scheduler())
                .whenComplete((outcome, failure) -> {
                    if (outcome instanceof ClusterCaller.Succeeded ok) {
                        result.complete(ok.result());
                    } else if (outcome instanceof ClusterCaller.Failed f) {
                        result.completeExceptionally(new ClusterInferenceException(requestId, f.attempts(), f.reason()));
                    } else {
                        result.completeExceptionally(new ClusterInferenceException(requestId, 0,
                                "the cluster caller did not answer within " + callBound + ": " + failure));
                    }
                });
        return result;
    }

    /**
     * The actor behind {@link #infer}: send it {@link ClusterCaller.Call}s with your own reply-to to receive
     * every {@link ClusterCaller.Outcome} as a message.
     */
    public ActorRef<ClusterCaller.Command> caller() {
        return caller;
    }

    /** Attempts made after a first one failed or timed out, since this client was created. */
    public long retries() {
        return counters.retries.get();
    }

    /** Calls, outcomes, retries and the replies seen (late ones, duplicates), since this client was created. */
    public ClusterCaller.Stats stats() {
        return counters.snapshot();
    }

    /** One attempt on one replica, with no retry: for probing a single replica. */
    public CompletionStage<ClusterInferReply> ask(String model, int replica, String requestId, InferenceInputs inputs,
                                                  Duration timeout) {
        return sharding.entityRefFor(ModelEntity.TYPE_KEY, ModelEntity.entityId(model, replica))
                .ask(replyTo -> ClusterInfer.of(requestId, inputs, replyTo), timeout);
    }
}
