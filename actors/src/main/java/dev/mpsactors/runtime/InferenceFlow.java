package dev.mpsactors.runtime;

import dev.mpsactors.protocol.InferenceProtocol;
import dev.mpsactors.protocol.InferenceProtocol.InferFailure;
import dev.mpsactors.protocol.InferenceProtocol.InferReply;
import java.time.Duration;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Scheduler;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.stream.javadsl.Flow;

/**
 * Pekko Streams access to a model: a {@link Flow} from requests to replies, in request order, with at most
 * {@code parallelism} requests in flight. When that many are outstanding the flow stops pulling, so a fast
 * source is backpressured instead of queueing without bound. Every element gets a reply element: a
 * request that gets no answer within {@code timeout} becomes an {@link InferFailure} saying so, and the
 * stream goes on. Each request carries {@code timeout} as its deadline, so one still queued when the flow
 * gives up on it is dropped before it reaches the device. A request the model refuses at admission comes
 * out as an {@code Overloaded} element (with backpressure that only happens when several flows or other
 * clients share the model).
 */
public final class InferenceFlow {
    private InferenceFlow() {}

    public static Flow<InferenceRequest, InferReply, NotUsed> create(ActorRef<InferenceProtocol.Command> model,
                                                                     int parallelism, Duration timeout,
                                                                     Scheduler scheduler) {
        if (parallelism < 1) {
            throw new IllegalArgumentException("parallelism must be >= 1, got " + parallelism);
        }
        return Flow.<InferenceRequest>create().mapAsync(parallelism, request ->
                AskPattern.<InferenceProtocol.Command, InferReply>ask(model,
                                replyTo -> InferenceProtocol.Infer.within(request.requestId(), request.inputs(), replyTo,
                                        timeout, request.outputs()),
                                timeout, scheduler)
                        .exceptionally(e -> new InferFailure(request.requestId(),
                                dev.mpsactors.protocol.TextProtocol.FailureKind.DEADLINE_EXCEEDED, "no reply from the model within " + timeout + ": " + e)));
    }
}
