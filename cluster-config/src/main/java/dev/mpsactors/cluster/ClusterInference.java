package dev.mpsactors.cluster;

import dev.mpsactors.cluster.ModelEntity.ClusterInfer;
import dev.mpsactors.cluster.ModelEntity.ClusterInferFailure;
import dev.mpsactors.cluster.ModelEntity.ClusterInferReply;
import dev.mpsactors.cluster.ModelEntity.ClusterInferResult;
import dev.mpsactors.protocol.InferenceProtocol.InferenceInputs;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.cluster.sharding.typed.javadsl.ClusterSharding;

/**
 * The client API of a cluster: {@link #infer} sends a request to one replica of a model, wherever sharding
 * placed it, and completes with its result. Usable from plain Java and from actors (pipe the stage to
 * yourself); nothing here blocks.
 *
 * <p>Requests are spread over the model's replicas round robin. An attempt that times out, or that the
 * replica answers with a retryable failure (it stopped, moved, or lost its model actor), is retried with
 * the same request id on the next replica, up to {@code attempts} times; after the last, or at once on a
 * failure every replica would give (a bad request, a model that cannot load), the stage fails with a
 * {@link ClusterInferenceException}. A caller therefore never waits longer than about
 * attempts x (attempt-timeout + retry-backoff).
 *
 * <p>Retrying is safe because inference is a pure function of its inputs: an attempt that timed out may
 * still be computed on the lost or slow replica, but it changes nothing anywhere, and its late reply goes to
 * an ask that is already over. The caller sees exactly one outcome per call.
 */
public final class ClusterInference {
    private final ClusterSharding sharding;
    private final ClusterSettings settings;
    private final Executor executor;
    // Next replica per model; incremented by any caller thread.
    private final ConcurrentMap<String, AtomicLong> nextReplica = new ConcurrentHashMap<>();
    // Attempts after the first, over all requests: how often failover was needed.
    private final AtomicLong retries = new AtomicLong();

    public ClusterInference(ActorSystem<?> system, ClusterSettings settings) {
        this.sharding = ClusterSharding.get(system);
        this.settings = settings;
        this.executor = system.executionContext();
    }

    /** Completes with the model's result, or fails with a {@link ClusterInferenceException}. */
    public CompletionStage<ClusterInferResult> infer(String model, String requestId, InferenceInputs inputs) {
        long first = nextReplica.computeIfAbsent(model, m -> new AtomicLong()).getAndIncrement();
        CompletableFuture<ClusterInferResult> result = new CompletableFuture<>();
        attempt(model, requestId, inputs, first, 1, result);
        return result;
    }

    /** Attempts made after a first one failed or timed out, since this client was created. */
    public long retries() {
        return retries.get();
    }

    /** One attempt on one replica, with no retry: for probing a single replica. */
    public CompletionStage<ClusterInferReply> ask(String model, int replica, String requestId, InferenceInputs inputs,
                                                  Duration timeout) {
        return sharding.entityRefFor(ModelEntity.TYPE_KEY, ModelEntity.entityId(model, replica))
                .ask(replyTo -> ClusterInfer.of(requestId, inputs, replyTo), timeout);
    }

    private void attempt(String model, String requestId, InferenceInputs inputs, long replica, int attempt,
                         CompletableFuture<ClusterInferResult> result) {
        int r = (int) Math.floorMod(replica, (long) settings.replicas());
        ask(model, r, requestId, inputs, settings.attemptTimeout()).whenComplete((reply, failure) -> {
            String why;
            if (reply instanceof ClusterInferResult ok) {
                result.complete(ok);
                return;
            } else if (reply instanceof ClusterInferFailure f && !f.retryable()) {
                result.completeExceptionally(new ClusterInferenceException(requestId, attempt, f.reason()));
                return;
            } else if (reply instanceof ClusterInferFailure f) {
                why = f.reason();
            } else {
                Throwable cause = failure instanceof CompletionException && failure.getCause() != null
                        ? failure.getCause() : failure;
                why = cause instanceof TimeoutException
                        ? "no reply from replica " + ModelEntity.entityId(model, r) + " within "
                        + settings.attemptTimeout()
                        : String.valueOf(cause);
            }
            if (attempt >= settings.attempts()) {
                result.completeExceptionally(new ClusterInferenceException(requestId, attempt, why));
            } else {
                Executor later = CompletableFuture.delayedExecutor(settings.retryBackoff().toMillis(),
                        TimeUnit.MILLISECONDS, executor);
                retries.incrementAndGet();
                later.execute(() -> attempt(model, requestId, inputs, replica + 1, attempt + 1, result));
            }
        });
    }
}
