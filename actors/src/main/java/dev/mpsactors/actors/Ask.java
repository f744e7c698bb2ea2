package dev.mpsactors.actors;

import java.time.Duration;
import java.util.function.BiFunction;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.RecipientRef;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.util.Timeout;
import scala.reflect.ClassTag$;
import scala.util.Try;

/**
 * Request-response between actors, as {@code ActorContext.ask} of the Java DSL, without its thread hop.
 *
 * <p>The Java DSL's ask pipes the reply through a {@code CompletionStage} converted from a Scala future, whose
 * non-async callbacks run on {@code CompletableFuture}'s default asynchronous executor: the common
 * fork-join pool, or, on a machine of two cores or fewer (common pool parallelism 1), a <em>new thread per
 * reply</em>. On two cores that cost the owners' request path three thread starts per device batch. This asks
 * through the Scala DSL instead: the reply (or the timeout) is handed to the asking actor as a message on the
 * replier's thread, and {@code applyToResponse} runs in the asking actor, as with the Java DSL.
 */
public final class Ask {
    private Ask() {
    }

    /**
     * Sends {@code createRequest}'s message to {@code target} with a temporary reply address and delivers
     * {@code applyToResponse(reply, null)}, or {@code applyToResponse(null, failure)} when no reply of class
     * {@code replyClass} came within {@code timeout}, to {@code ctx}'s actor as a message.
     */
    public static <T, Req, Res> void ask(ActorContext<T> ctx, Class<Res> replyClass, RecipientRef<Req> target,
                                         Duration timeout, Function<ActorRef<Res>, Req> createRequest,
                                         BiFunction<Res, Throwable, T> applyToResponse) {
        scala.Function1<ActorRef<Res>, Req> request = createRequest::apply;
        scala.Function1<Try<Res>, T> mapResponse = reply -> reply.isSuccess()
                ? applyToResponse.apply(reply.get(), null)
                : applyToResponse.apply(null, reply.failed().get());
        ctx.asScala().ask(target, request, mapResponse, Timeout.create(timeout), ClassTag$.MODULE$.apply(replyClass));
    }
}
