package dev.mpsactors.protocol;

import dev.mpsactors.protocol.InferenceProtocol.Pooling;
import java.time.Instant;
import java.util.List;
import java.util.Objects;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Messages of a text encoder: the model behind it speaks token ids ({@link InferenceProtocol.Infer}); this
 * speaks text. An {@link Embed} is answered by exactly one {@link Embeddings} or {@link EmbedFailure}
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

    public sealed interface Command permits Embed, Internal {}

    /** Messages private to the encoder's implementation. */
    public non-sealed interface Internal extends Command {}

    /**
     * @param deadline when the caller stops waiting (null: never); passed on to the model request
     * @param options  null: {@link EmbedOptions#DEFAULT}
     */
    public record Embed(String requestId, List<String> texts, EmbedOptions options, ActorRef<EmbedReply> replyTo,
                        Instant deadline) implements Command {
        public Embed {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(texts, "texts");
            Objects.requireNonNull(replyTo, "replyTo");
            options = options == null ? EmbedOptions.DEFAULT : options;
            // a copy that keeps null elements: they are reported as bad texts, not thrown here
            texts = java.util.Collections.unmodifiableList(new java.util.ArrayList<>(texts));
        }

        public Embed(String requestId, List<String> texts, EmbedOptions options, ActorRef<EmbedReply> replyTo) {
            this(requestId, texts, options, replyTo, null);
        }
    }

    public sealed interface EmbedReply permits Embeddings, EmbedFailure {
        String requestId();
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
     * @param reason   the whole story in one line
     * @param problems the bad texts (empty when the failure is not about one text: overload, deadline, device)
     */
    public record EmbedFailure(String requestId, String reason, List<TextProblem> problems) implements EmbedReply {
        public EmbedFailure {
            problems = problems == null ? List.of() : List.copyOf(problems);
        }

        public EmbedFailure(String requestId, String reason) {
            this(requestId, reason, List.of());
        }
    }
}
