package dev.mpsactors.runtime;

import dev.mpsactors.protocol.TextProtocol;
import dev.mpsactors.protocol.TextProtocol.TextFailure;
import dev.mpsactors.protocol.TextProtocol.EmbedReply;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Objects;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Scheduler;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.stream.javadsl.Flow;

/**
 * Pekko Streams access to a text encoder: a {@link Flow} from {@link Request}s to replies, in request
 * order, at most {@code parallelism} in flight (backpressure beyond), as {@link InferenceFlow} is for token
 * ids. Every element gets exactly one reply element; one without an answer within {@code timeout} becomes
 * an {@link TextFailure} saying so, and each request carries {@code timeout} as its deadline.
 */
public final class EmbeddingFlow {
    private EmbeddingFlow() {}

    /** One element: an id, its texts and the options (null: the folder's settings). */
    public record Request(String requestId, List<String> texts, TextProtocol.EmbedOptions options) {
        public Request {
            Objects.requireNonNull(requestId, "requestId");
            Objects.requireNonNull(texts, "texts");
        }
    }

    public static Flow<Request, EmbedReply, NotUsed> create(ActorRef<TextProtocol.Command> encoder, int parallelism,
                                                            Duration timeout, Scheduler scheduler) {
        if (parallelism < 1) {
            throw new IllegalArgumentException("parallelism must be >= 1, got " + parallelism);
        }
        return Flow.<Request>create().mapAsync(parallelism, request ->
                AskPattern.<TextProtocol.Command, EmbedReply>ask(encoder,
                                replyTo -> new TextProtocol.Embed(request.requestId(), request.texts(), request.options(),
                                        replyTo, Instant.now().plus(timeout)),
                                timeout, scheduler)
                        .exceptionally(e -> new TextFailure(request.requestId(), TextProtocol.FailureKind.UNAVAILABLE,
                                "no reply from the text encoder within " + timeout + ": " + e)));
    }
}
