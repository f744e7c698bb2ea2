package dev.mpsactors.bench.jmh;

import java.util.concurrent.CompletableFuture;
import java.util.function.BiConsumer;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;

/**
 * An actor that runs {@code n} request/reply exchanges one after another, entirely between actors: each
 * reply arrives in its mailbox and it sends the next request from its own thread. The benchmark thread only
 * starts a batch and waits for its end, so the per-exchange cost (batch time / n) is the pure mailbox round
 * trip plus the target's handler, without AskPattern's temporary actor, future and thread wake-up.
 */
final class SequentialAsker {
    private SequentialAsker() {}

    /**
     * @param step  sends one request with {@code self} as its reply address; {@code previous} is the reply to
     *              the request before it (null for the first), e.g. to free what it allocated
     * @param done  completed with the last reply
     */
    record Run(int n, BiConsumer<Object, ActorRef<Object>> step, CompletableFuture<Object> done) {}

    static Behavior<Object> create() {
        return Behaviors.setup(ctx -> new Driver(ctx.getSelf()).idle());
    }

    private static final class Driver {
        private final ActorRef<Object> self;
        private Run running;
        private int remaining;

        Driver(ActorRef<Object> self) {
            this.self = self;
        }

        Behavior<Object> idle() {
            return Behaviors.receive(Object.class)
                    .onMessage(Run.class, r -> {
                        running = r;
                        remaining = r.n();
                        r.step().accept(null, self);
                        return busy();
                    })
                    .build();
        }

        Behavior<Object> busy() {
            return Behaviors.receive(Object.class)
                    .onAnyMessage(reply -> {
                        if (--remaining > 0) {
                            running.step().accept(reply, self);
                            return Behaviors.same();
                        }
                        Run finished = running;
                        running = null;
                        finished.done().complete(reply);
                        return idle();
                    })
                    .build();
        }
    }

    /** The simplest owner there is: answers every Ping at once. The baseline for a mailbox round trip. */
    record Ping(ActorRef<Object> replyTo) {}

    static final Object PONG = "pong";

    static Behavior<Ping> echo() {
        return Behaviors.receive(Ping.class)
                .onMessage(Ping.class, p -> {
                    p.replyTo().tell(PONG);
                    return Behaviors.same();
                })
                .build();
    }
}
