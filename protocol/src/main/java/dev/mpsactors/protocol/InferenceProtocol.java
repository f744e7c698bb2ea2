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

    /** How a sentence embedding is pooled from last_hidden_state over a sequence's tokens (attention mask 1). */
    public enum Pooling {
        /** The first position (the [CLS] token). */
        CLS,
        /** The mean over the tokens. */
        MEAN,
        /** The per-dimension maximum over the tokens. */
        MAX,
        /** The sum over the tokens divided by the square root of their number. */
        MEAN_SQRT_LEN;

        /** By its name in any case: "cls", "mean", "max", "mean_sqrt_len". */
        public static Pooling of(String name) {
            for (Pooling p : values()) {
                if (p.name().equalsIgnoreCase(name)) {
                    return p;
                }
            }
            throw new IllegalArgumentException("unknown pooling '" + name + "' (cls, mean, max or mean_sqrt_len)");
        }
    }

    /** A pooled sentence embedding, L2-normalized when {@code normalize}. */
    public record Embedding(Pooling pooling, boolean normalize) {
        public Embedding {
            Objects.requireNonNull(pooling, "pooling");
        }

        @Override
        public String toString() {
            return "embedding:" + pooling.name().toLowerCase(java.util.Locale.ROOT) + (normalize ? ":normalized" : "");
        }
    }

    /**
     * The outputs a request asks for; only these are computed into the reply and copied from the device.
     * {@link #HF_DEFAULT} is what Hugging Face's {@code BertModel} returns: last_hidden_state and pooler_output.
     *
     * @param embedding null: no pooled embedding
     * @param logits    the sequence-classification head's logits (a checkpoint with a head)
     */
    public record OutputSpec(boolean lastHiddenState, boolean poolerOutput, Embedding embedding, boolean logits) {
        public static final OutputSpec HF_DEFAULT = new OutputSpec(true, true, null);

        /** Only the head's logits. */
        public static final OutputSpec LOGITS = new OutputSpec(false, false, null, true);

        public OutputSpec {
            if (!lastHiddenState && !poolerOutput && embedding == null && !logits) {
                throw new IllegalArgumentException("a request must ask for at least one output");
            }
        }

        public OutputSpec(boolean lastHiddenState, boolean poolerOutput, Embedding embedding) {
            this(lastHiddenState, poolerOutput, embedding, false);
        }

        /** Only the pooled embedding. */
        public static OutputSpec embedding(Pooling pooling, boolean normalize) {
            return new OutputSpec(false, false, new Embedding(pooling, normalize));
        }

        /**
         * A comma-separated list of {@code last_hidden_state}, {@code pooler_output}, {@code logits} and
         * {@code embedding[:cls|mean|max|mean_sqrt_len][:normalized]} (pooling mean by default), or
         * {@code default} for {@link #HF_DEFAULT}.
         */
        public static OutputSpec parse(String text) {
            Objects.requireNonNull(text, "text");
            if (text.isBlank() || text.strip().equalsIgnoreCase("default")) {
                return HF_DEFAULT;
            }
            boolean hidden = false, pooler = false, logits = false;
            Embedding embedding = null;
            for (String item : text.split(",")) {
                String[] parts = item.strip().toLowerCase(java.util.Locale.ROOT).split(":");
                switch (parts[0]) {
                    case "last_hidden_state" -> hidden = true;
                    case "pooler_output" -> pooler = true;
                    case "logits" -> logits = true;
                    case "embedding" -> {
                        Pooling pooling = Pooling.MEAN;
                        boolean normalize = false;
                        for (int i = 1; i < parts.length; i++) {
                            if (parts[i].equals("normalized")) {
                                normalize = true;
                            } else {
                                pooling = Pooling.of(parts[i]);
                            }
                        }
                        embedding = new Embedding(pooling, normalize);
                    }
                    default -> throw new IllegalArgumentException("unknown output '" + item.strip()
                            + "' (last_hidden_state, pooler_output, logits, embedding[:cls|mean|max|mean_sqrt_len]"
                            + "[:normalized])");
                }
            }
            return new OutputSpec(hidden, pooler, embedding, logits);
        }

        @Override
        public String toString() {
            java.util.List<String> parts = new java.util.ArrayList<>();
            if (lastHiddenState) {
                parts.add("last_hidden_state");
            }
            if (poolerOutput) {
                parts.add("pooler_output");
            }
            if (embedding != null) {
                parts.add(embedding.toString());
            }
            if (logits) {
                parts.add("logits");
            }
            return String.join(",", parts);
        }
    }

    public sealed interface Command permits Infer, Cancel, GetModelStats, Internal {}

    /** Messages private to the model actor's implementation. */
    public non-sealed interface Internal extends Command {}

    /**
     * @param deadline when the caller stops waiting (null: never). A request still queued at its deadline is
     *                 answered with an {@link InferFailure} and never reaches the device; one already running
     *                 completes normally (its result may arrive after the caller gave up).
     * @param outputs  what the reply carries (null: {@link OutputSpec#HF_DEFAULT})
     * @param priority orders the model's queue: among queued requests a higher priority is batched first,
     *                 equal priorities in arrival order (0 by default)
     */
    public record Infer(String requestId, InferenceInputs inputs, ActorRef<InferReply> replyTo, Instant deadline,
                        OutputSpec outputs, int priority) implements Command {
        public Infer {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(inputs, "inputs");
            Objects.requireNonNull(replyTo, "replyTo");
            outputs = outputs == null ? OutputSpec.HF_DEFAULT : outputs;
        }

        public Infer(String requestId, InferenceInputs inputs, ActorRef<InferReply> replyTo, Instant deadline,
                     OutputSpec outputs) {
            this(requestId, inputs, replyTo, deadline, outputs, 0);
        }

        public Infer(String requestId, InferenceInputs inputs, ActorRef<InferReply> replyTo, Instant deadline) {
            this(requestId, inputs, replyTo, deadline, null);
        }

        public Infer(String requestId, InferenceInputs inputs, ActorRef<InferReply> replyTo) {
            this(requestId, inputs, replyTo, null, null);
        }

        /** A request the caller waits for at most {@code timeout} from now. */
        public static Infer within(String requestId, InferenceInputs inputs, ActorRef<InferReply> replyTo,
                                   java.time.Duration timeout) {
            return within(requestId, inputs, replyTo, timeout, null);
        }

        /** A request for {@code outputs} that the caller waits for at most {@code timeout} from now. */
        public static Infer within(String requestId, InferenceInputs inputs, ActorRef<InferReply> replyTo,
                                   java.time.Duration timeout, OutputSpec outputs) {
            return new Infer(requestId, inputs, replyTo, Instant.now().plus(timeout), outputs);
        }
    }

    /**
     * The caller no longer wants the reply to {@code requestId} (it went away): a request still queued is
     * answered at once with an {@link InferFailure} saying so and never reaches the device; one already in a
     * batch completes normally. Unknown ids are ignored.
     */
    public record Cancel(String requestId) implements Command {
        public Cancel {
            Objects.requireNonNull(requestId, "requestId");
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
     * Each output is null unless the request asked for it ({@link Infer#outputs()}).
     *
     * @param lastHiddenState [batch][seq][hidden]
     * @param poolerOutput    [batch][hidden]
     * @param embedding       [batch][hidden], the pooled sentence embedding
     * @param logits          [batch][labels], the sequence-classification head's logits
     */
    public record InferResult(String requestId, float[][][] lastHiddenState, float[][] poolerOutput,
                              float[][] embedding, float[][] logits) implements InferReply {
        public InferResult(String requestId, float[][][] lastHiddenState, float[][] poolerOutput) {
            this(requestId, lastHiddenState, poolerOutput, null, null);
        }

        public InferResult(String requestId, float[][][] lastHiddenState, float[][] poolerOutput,
                           float[][] embedding) {
            this(requestId, lastHiddenState, poolerOutput, embedding, null);
        }
    }

    /**
     * @param kind      what kind of failure it is, set where the failure is made: {@code INVALID_REQUEST} (bad
     *                  input), {@code UNSUPPORTED} (an output the model does not offer), {@code DEADLINE_EXCEEDED}
     *                  (expired before the device), {@code CANCELLED} (the caller's {@link Cancel}),
     *                  {@code UNAVAILABLE} (the model, its runtime or the device failed or stopped);
     *                  {@code OVERLOADED} only where an overload crossed a boundary that has no {@link Overloaded}
     * @param retryable true when the request never reached the device and the failure was the runtime's, not the
     *                  request's (the runtime stopping, one of its owners gone): another replica may serve it
     */
    public record InferFailure(String requestId, TextProtocol.FailureKind kind, String reason, boolean retryable)
            implements InferReply {
        public InferFailure {
            Objects.requireNonNull(kind, "kind");
        }

        /** A failure that another replica would meet too (bad input, the model's own failure). */
        public InferFailure(String requestId, TextProtocol.FailureKind kind, String reason) {
            this(requestId, kind, reason, false);
        }
    }

    public record GetModelStats(ActorRef<ModelStats> replyTo) implements Command {}

    /**
     * @param batches         device batches run
     * @param sequences       sequences computed (sum of batch sizes)
     * @param largestBatch    most sequences in one device batch
     * @param overloaded      requests refused with {@link Overloaded} (not counted in failed)
     * @param expired         requests whose deadline passed while queued (counted in failed)
     * @param partialWhileBusy batches smaller than max-batch that started while another batch of the model ran
     *                         (none with {@code model.partial-in-flight = 1})
     */
    public record ModelStats(String model, long requests, long succeeded, long failed, long batches, long sequences,
                             int largestBatch, long overloaded, long expired, long partialWhileBusy) {}
}
