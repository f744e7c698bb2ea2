package dev.mpsactors.protocol;

import java.time.Instant;
import java.util.Objects;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Messages of a model actor: {@code Infer} is answered by exactly one {@link InferResult},
 * {@link InferFailure} or {@link Overloaded} carrying the request's id. Concurrent requests of compatible shapes are batched
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

    /**
     * @param deadline when the caller stops waiting (null: never). A request still queued at its deadline is
     *                 answered with an {@link InferFailure} and never reaches the device; one already running
     *                 completes normally (its result may arrive after the caller gave up).
     */
    public record Infer(String requestId, InferenceInputs inputs, ActorRef<InferReply> replyTo, Instant deadline)
            implements Command {
        public Infer {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(inputs, "inputs");
            Objects.requireNonNull(replyTo, "replyTo");
        }

        public Infer(String requestId, InferenceInputs inputs, ActorRef<InferReply> replyTo) {
            this(requestId, inputs, replyTo, null);
        }

        /** A request the caller waits for at most {@code timeout} from now. */
        public static Infer within(String requestId, InferenceInputs inputs, ActorRef<InferReply> replyTo,
                                   java.time.Duration timeout) {
            return new Infer(requestId, inputs, replyTo, Instant.now().plus(timeout));
        }
    }

    public sealed interface InferReply permits InferResult, InferFailure, Overloaded {
        String requestId();
    }

    /**
     * Refused at once, before any work: the model already holds {@code mps-actors.model.max-queued} requests.
     * Nothing of the request was kept; the caller may retry later (or elsewhere).
     */
    public record Overloaded(String requestId, String reason) implements InferReply {}

    /**
     * @param lastHiddenState [batch][seq][hidden]
     * @param poolerOutput    [batch][hidden]; null when the model has no pooler (a checkpoint exported for
     *                        embeddings only), see {@link #hasPoolerOutput()}
     */
    public record InferResult(String requestId, float[][][] lastHiddenState, float[][] poolerOutput)
            implements InferReply {
        /** Whether the model offered pooler_output: false for a model without pooler. */
        public boolean hasPoolerOutput() {
            return poolerOutput != null;
        }
    }

    public record InferFailure(String requestId, String reason) implements InferReply {}

    public record GetModelStats(ActorRef<ModelStats> replyTo) implements Command {}

    /**
     * @param batches         device batches run
     * @param sequences       sequences computed (sum of batch sizes)
     * @param largestBatch    most sequences in one device batch
     * @param overloaded      requests refused with {@link Overloaded} (not counted in failed)
     * @param expired         requests whose deadline passed while queued (counted in failed)
     */
    public record ModelStats(String model, long requests, long succeeded, long failed, long batches, long sequences,
                             int largestBatch, long overloaded, long expired) {}
}
