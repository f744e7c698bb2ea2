package dev.mpsactors.runtime;

import java.time.Duration;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.RecipientRef;
import org.apache.pekko.actor.typed.javadsl.AskPattern;

/** The one way the facade's groups ask an owner: the runtime's ActorSystem scheduler and ask timeout. */
final class Asker {
    private final ActorSystem<?> system;
    private final Duration timeout;

    Asker(ActorSystem<?> system, Duration timeout) {
        this.system = system;
        this.timeout = timeout;
    }

    <Q, R> CompletionStage<R> ask(RecipientRef<Q> target, org.apache.pekko.japi.function.Function<ActorRef<R>, Q> message) {
        return AskPattern.ask(target, message, timeout, system.scheduler());
    }

    ActorSystem<?> system() {
        return system;
    }

    Duration timeout() {
        return timeout;
    }
}
