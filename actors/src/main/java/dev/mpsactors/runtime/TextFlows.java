package dev.mpsactors.runtime;

import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.protocol.TextProtocol.ClassifyReply;
import dev.mpsactors.protocol.TextProtocol.EmbedReply;
import dev.mpsactors.protocol.TextProtocol.RerankReply;
import dev.mpsactors.protocol.TextProtocol.TextFailure;
import dev.mpsactors.protocol.TextProtocol.TextReply;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Objects;
import java.util.function.BiFunction;
import java.util.function.Function;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Scheduler;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.stream.javadsl.Flow;

/**
 * Pekko Streams access to a text encoder, one {@link Flow} per request kind: elements in, replies out in
 * request order, at most {@code parallelism} in flight (backpressure beyond), as {@link InferenceFlow} is for
 * token ids. Every element gets exactly one reply element; one without an answer within {@code timeout} becomes
 * a {@link TextFailure} (kind UNAVAILABLE) saying so, and each request carries {@code timeout} as its deadline.
 */
public final class TextFlows {
    private TextFlows() {}

    /** One {@link TextProtocol.Embed}: an id, its texts and the options (null: the folder's settings). */
    public record EmbedRequest(String requestId, List<String> texts, TextProtocol.EmbedOptions options) {
        public EmbedRequest {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(texts, "texts");
        }
    }

    /** One {@link TextProtocol.Rerank}: the query, the texts scored against it, the options (null: defaults). */
    public record RerankRequest(String requestId, String query, List<String> texts, TextProtocol.ScoreOptions options) {
        public RerankRequest {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(texts, "texts");
        }
    }

    /** One {@link TextProtocol.Classify}: the texts and the options (null: defaults). */
    public record ClassifyRequest(String requestId, List<String> texts, TextProtocol.ScoreOptions options) {
        public ClassifyRequest {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(texts, "texts");
        }
    }

    /** Embeddings of each element's texts (or the failure). */
    public static Flow<EmbedRequest, EmbedReply, NotUsed> embed(ActorRef<TextProtocol.Command> encoder,
                                                                int parallelism, Duration timeout,
                                                                Scheduler scheduler) {
        return flow(encoder, parallelism, timeout, scheduler, EmbedRequest::requestId,
                (r, deadline) -> replyTo -> new TextProtocol.Embed(r.requestId(), r.texts(), r.options(), replyTo,
                        deadline), f -> f);
    }

    /** Scores of each element's texts against its query, with the encoder's cross-encoder head (or the failure). */
    public static Flow<RerankRequest, RerankReply, NotUsed> rerank(ActorRef<TextProtocol.Command> encoder,
                                                                   int parallelism, Duration timeout,
                                                                   Scheduler scheduler) {
        return flow(encoder, parallelism, timeout, scheduler, RerankRequest::requestId,
                (r, deadline) -> replyTo -> new TextProtocol.Rerank(r.requestId(), r.query(), r.texts(), r.options(),
                        replyTo, deadline), f -> f);
    }

    /** Labels and scores of each element's texts, with the encoder's classification head (or the failure). */
    public static Flow<ClassifyRequest, ClassifyReply, NotUsed> classify(ActorRef<TextProtocol.Command> encoder,
                                                                         int parallelism, Duration timeout,
                                                                         Scheduler scheduler) {
        return flow(encoder, parallelism, timeout, scheduler, ClassifyRequest::requestId,
                (r, deadline) -> replyTo -> new TextProtocol.Classify(r.requestId(), r.texts(), r.options(), replyTo,
                        deadline), f -> f);
    }

    /**
     * @param message  the request for an element, given its deadline and the ask's reply address
     * @param asReply  a failure as the flow's reply type (every reply interface admits {@link TextFailure})
     */
    private static <I, R extends TextReply> Flow<I, R, NotUsed> flow(
            ActorRef<TextProtocol.Command> encoder, int parallelism, Duration timeout, Scheduler scheduler,
            Function<I, String> requestId,
            BiFunction<I, Instant, org.apache.pekko.japi.function.Function<ActorRef<R>, TextProtocol.Command>> message,
            Function<TextFailure, R> asReply) {
        if (parallelism < 1) {
            throw new IllegalArgumentException("parallelism must be >= 1, got " + parallelism);
        }
        Objects.requireNonNull(encoder, "encoder");
        return Flow.<I>create().mapAsync(parallelism, element ->
                AskPattern.<TextProtocol.Command, R>ask(encoder, message.apply(element, Instant.now().plus(timeout)),
                                timeout, scheduler)
                        .exceptionally(e -> asReply.apply(new TextFailure(requestId.apply(element),
                                TextProtocol.FailureKind.UNAVAILABLE,
                                "no reply from the text encoder within " + timeout + ": " + e))));
    }
}
