package dev.mpsactors.protocol;

import java.util.Objects;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Messages of a model actor: {@code Infer} is answered by exactly one {@link InferResult} or
 * {@link InferFailure} carrying the request's id. Concurrent requests of compatible shapes are batched
 * onto the device together; a bad request fails alone, never its batch.
 */
public final class InferenceProtocol {
    private InferenceProtocol() {}

    /**
     * Token ids of one request: {@code inputIds[b][t]}; {@code attentionMask} (1 = token, 0 = padding)
     * and {@code tokenTypeIds} may be null (all ones, all zeros). Shapes are checked by the model actor,
     * which names what is wrong in its failure reply.
     */
    public record InferenceInputs(int[][] inputIds, int[][] attentionMask, int[][] tokenTypeIds) {
        public InferenceInputs {
            Objects.requireNonNull(inputIds, "inputIds");
        }

        public static InferenceInputs of(int[][] inputIds) {
            return new InferenceInputs(inputIds, null, null);
        }
    }

    public sealed interface Command permits Infer, GetModelStats, Internal {}

    /** Messages private to the model actor's implementation. */
    public non-sealed interface Internal extends Command {}

    public record Infer(String requestId, InferenceInputs inputs, ActorRef<InferReply> replyTo) implements Command {
        public Infer {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(inputs, "inputs");
            Objects.requireNonNull(replyTo, "replyTo");
        }
    }

    public sealed interface InferReply permits InferResult, InferFailure {
        String requestId();
    }

    /**
     * @param lastHiddenState [batch][seq][hidden]
     * @param poolerOutput    [batch][hidden]
     */
    public record InferResult(String requestId, float[][][] lastHiddenState, float[][] poolerOutput)
            implements InferReply {}

    public record InferFailure(String requestId, String reason) implements InferReply {}

    public record GetModelStats(ActorRef<ModelStats> replyTo) implements Command {}

    /**
     * @param batches         device batches run
     * @param sequences       sequences computed (sum of batch sizes)
     * @param largestBatch    most sequences in one device batch
     */
    public record ModelStats(String model, long requests, long succeeded, long failed, long batches, long sequences,
                             int largestBatch) {}
}
