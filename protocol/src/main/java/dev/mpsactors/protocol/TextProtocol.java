package dev.mpsactors.protocol;

import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import java.time.Instant;
import java.util.List;
import java.util.Objects;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Messages of a text encoder: the model behind it speaks token ids ({@link InferenceProtocol.Infer}); this
 * speaks text. An {@link Embed} is answered by exactly one {@link Embeddings} or {@link TextFailure}
 * carrying its id. Texts are tokenized off every owner and model actor, then run as one request of the
 * model, so concurrent requests share device batches. A request with a bad text fails whole, naming each
 * bad text by its index; other requests, in the same device batch or not, are unaffected.
 */
public final class TextProtocol {
    private TextProtocol() {}

    /**
     * Per-request choices; null fields take the model folder's settings (its sentence-transformers modules).
     *
     * @param pooling   null: as the folder says (mean when it says nothing)
     * @param normalize null: as the folder says (a Normalize module)
     * @param truncate  texts longer than the model's limit are cut to it (true) or refused (false)
     */
    public record EmbedOptions(Pooling pooling, Boolean normalize, boolean truncate) {
        public static final EmbedOptions DEFAULT = new EmbedOptions(null, null, true);

        public EmbedOptions withTruncate(boolean value) {
            return new EmbedOptions(pooling, normalize, value);
        }
    }

    public sealed interface Command permits Embed, EmbedTokens, Cancel, Rerank, Classify, Describe, Internal {}

    /** Messages private to the encoder's implementation. */
    public non-sealed interface Internal extends Command {}

    /**
     * @param deadline when the caller stops waiting (null: never); passed on to the model request
     * @param options  null: {@link EmbedOptions#DEFAULT}
     * @param priority passed on to the model request: a higher priority is batched first (0 by default)
     */
    public record Embed(String requestId, List<String> texts, EmbedOptions options, ActorRef<EmbedReply> replyTo,
                        Instant deadline, int priority) implements Command {
        public Embed {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(texts, "texts");
            Objects.requireNonNull(replyTo, "replyTo");
            options = options == null ? EmbedOptions.DEFAULT : options;
            // a copy that keeps null elements: they are reported as bad texts, not thrown here
            texts = java.util.Collections.unmodifiableList(new java.util.ArrayList<>(texts));
        }

        public Embed(String requestId, List<String> texts, EmbedOptions options, ActorRef<EmbedReply> replyTo,
                     Instant deadline) {
            this(requestId, texts, options, replyTo, deadline, 0);
        }

        public Embed(String requestId, List<String> texts, EmbedOptions options, ActorRef<EmbedReply> replyTo) {
            this(requestId, texts, options, replyTo, null);
        }
    }

    /**
     * Embeds sequences given as token ids of the model's vocabulary (special tokens included as the caller
     * wants them), answered like {@link Embed} with one {@link Embeddings} or {@link TextFailure}. Each
     * sequence is one text: an empty one, a negative id, or more than {@code mps-actors.text.max-texts}
     * sequences fail the request naming it; a sequence longer than the model's limit is cut to it when
     * {@code options.truncate()} (ids past the limit dropped), else refused. Ids beyond the vocabulary are
     * refused by the model, naming the position.
     *
     * @param tokenIds [sequences][tokens]
     * @param options  null: {@link EmbedOptions#DEFAULT}
     * @param deadline when the caller stops waiting (null: never)
     * @param priority a higher priority is batched first (0 by default)
     */
    public record EmbedTokens(String requestId, int[][] tokenIds, EmbedOptions options, ActorRef<EmbedReply> replyTo,
                              Instant deadline, int priority) implements Command {
        public EmbedTokens {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(tokenIds, "tokenIds");
            Objects.requireNonNull(replyTo, "replyTo");
            options = options == null ? EmbedOptions.DEFAULT : options;
        }
    }

    /**
     * The caller no longer wants the reply to {@code requestId} (an HTTP client disconnected): a request
     * still being tokenized or queued at the model is answered at once with a {@link TextFailure} of kind
     * {@link FailureKind#CANCELLED} and never reaches the device; one already in a device batch completes
     * normally. Unknown ids are ignored.
     */
    public record Cancel(String requestId) implements Command {
        public Cancel {
            Objects.requireNonNull(requestId, "requestId");
        }
    }

    /** What a text request is answered with: its result or a {@link TextFailure}. */
    public sealed interface TextReply permits EmbedReply, RerankReply, ClassifyReply {
        String requestId();
    }

    public sealed interface EmbedReply extends TextReply permits Embeddings, TextFailure {}

    public sealed interface RerankReply extends TextReply permits Scores, TextFailure {}

    public sealed interface ClassifyReply extends TextReply permits Classifications, TextFailure {}

    /** What a model folder can be asked for, by its weights: a body embeds; a sequence-classification head scores. */
    public enum Task {
        /** {@link Embed}: every folder (its pooled hidden states). */
        EMBED,
        /** {@link Rerank}: a sequence-classification head with one label (a cross-encoder). */
        RERANK,
        /** {@link Classify}: a sequence-classification head. */
        CLASSIFY
    }

    /**
     * Per-request choices of a scoring request.
     *
     * @param truncate  texts (pairs) longer than the model's limit are cut to it (true) or refused (false)
     * @param rawScores the head's logits as they are (true), or passed through the activation the model
     *                  names: sigmoid for one label or {@code multi_label_classification}, softmax otherwise
     */
    public record ScoreOptions(boolean truncate, boolean rawScores) {
        public static final ScoreOptions DEFAULT = new ScoreOptions(true, false);
    }

    /**
     * Scores each text against the query with a cross-encoder: each (query, text) runs as one pair
     * ({@code [CLS] query [SEP] text [SEP]} or the family's own pair template).
     *
     * @param options  null: {@link ScoreOptions#DEFAULT}
     * @param deadline when the caller stops waiting (null: never)
     */
    public record Rerank(String requestId, String query, List<String> texts, ScoreOptions options,
                         ActorRef<RerankReply> replyTo, Instant deadline) implements Command {
        public Rerank {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(texts, "texts");
            Objects.requireNonNull(replyTo, "replyTo");
            options = options == null ? ScoreOptions.DEFAULT : options;
            texts = java.util.Collections.unmodifiableList(new java.util.ArrayList<>(texts));
        }

        public Rerank(String requestId, String query, List<String> texts, ActorRef<RerankReply> replyTo) {
            this(requestId, query, texts, null, replyTo, null);
        }
    }

    /**
     * One relevance score per text, in the request's order.
     *
     * @param tokenCounts tokens each pair ran as, special tokens included, after truncation
     * @param truncated   whether each pair was cut to the model's limit
     */
    public record Scores(String requestId, float[] scores, int[] tokenCounts, boolean[] truncated)
            implements RerankReply {}

    /**
     * Classifies each text with the model's sequence-classification head.
     *
     * @param options  null: {@link ScoreOptions#DEFAULT}
     * @param deadline when the caller stops waiting (null: never)
     */
    public record Classify(String requestId, List<String> texts, ScoreOptions options,
                           ActorRef<ClassifyReply> replyTo, Instant deadline) implements Command {
        public Classify {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(texts, "texts");
            Objects.requireNonNull(replyTo, "replyTo");
            options = options == null ? ScoreOptions.DEFAULT : options;
            texts = java.util.Collections.unmodifiableList(new java.util.ArrayList<>(texts));
        }

        public Classify(String requestId, List<String> texts, ActorRef<ClassifyReply> replyTo) {
            this(requestId, texts, null, replyTo, null);
        }
    }

    /** A label of the head ({@code id2label}) and its score. */
    public record LabelScore(String label, float score) {}

    /**
     * Per text, in the request's order, every label of the head with its score, highest first.
     *
     * @param tokenCounts tokens each text ran as, special tokens included, after truncation
     * @param truncated   whether each text was cut to the model's limit
     */
    public record Classifications(String requestId, List<List<LabelScore>> labels, int[] tokenCounts,
                                  boolean[] truncated) implements ClassifyReply {
        public Classifications {
            labels = labels.stream().map(List::copyOf).toList();
        }
    }

    /** Asks the encoder what it is and what it can be asked for. */
    public record Describe(ActorRef<EncoderInfo> replyTo) implements Command {
        public Describe {
            Objects.requireNonNull(replyTo, "replyTo");
        }
    }

    /**
     * @param family     the model family ({@code bert}, {@code roberta}, ...), as the folder's config names it
     * @param hiddenSize the width of an embedding
     * @param maxTokens  the most tokens a text (or pair) runs as, special tokens included
     * @param tasks      what it can be asked for
     * @param labels     the head's labels in id order (empty without a head)
     * @param pooling    the folder's default pooling for {@link Embed}
     * @param normalize  whether {@link Embed} L2-normalizes by default
     */
    public record EncoderInfo(String family, int hiddenSize, int maxTokens, java.util.Set<Task> tasks,
                              List<String> labels, Pooling pooling, boolean normalize) {
        public EncoderInfo {
            tasks = java.util.Set.copyOf(tasks);
            labels = List.copyOf(labels);
        }
    }

    /**
     * One vector per text, in the request's order.
     *
     * @param vectors     [texts][hidden], pooled (and normalized when asked) on the device
     * @param tokenCounts tokens each text ran as, special tokens included, after truncation
     * @param truncated   whether each text was cut to the model's limit
     */
    public record Embeddings(String requestId, float[][] vectors, int[] tokenCounts, boolean[] truncated)
            implements EmbedReply {}

    /** A text the request could not use: its index in {@link Embed#texts()} and why. */
    public record TextProblem(int index, String reason) {
        @Override
        public String toString() {
            return "text " + index + ": " + reason;
        }
    }

    /**
     * What kind of failure a {@link TextFailure} (or a model's {@link InferenceProtocol.InferFailure}) is: what a
     * caller (or an HTTP front) does about it.
     */
    public enum FailureKind {
        /** The request itself is wrong (no texts, too many, a bad or over-long text): do not retry it as is. */
        INVALID_REQUEST,
        /** The model cannot do what was asked (no classification head for a rerank, a pooling it lacks). */
        UNSUPPORTED,
        /** The model's queue is full: retry later. */
        OVERLOADED,
        /** The request's deadline passed before it reached the device. */
        DEADLINE_EXCEEDED,
        /** The model or the encoder stopped, or the device failed the batch. */
        UNAVAILABLE,
        /** The caller cancelled the request ({@link Cancel}) before it reached the device. */
        CANCELLED
    }

    /**
     * Why a text request was not answered with its result.
     *
     * @param reason   the whole story in one line
     * @param problems the bad texts (empty when the failure is not about one text: overload, deadline, device)
     */
    public record TextFailure(String requestId, FailureKind kind, String reason, List<TextProblem> problems)
            implements EmbedReply, RerankReply, ClassifyReply {
        public TextFailure {
            Objects.requireNonNull(kind, "kind");
            problems = problems == null ? List.of() : List.copyOf(problems);
        }

        public TextFailure(String requestId, FailureKind kind, String reason) {
            this(requestId, kind, reason, List.of());
        }
    }
}
