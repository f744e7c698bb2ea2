package dev.mpsactors.runtime;

import dev.mpsactors.protocol.EventPoolProtocol;
import dev.mpsactors.protocol.RuntimeProtocol.RuntimeRefs;
import dev.mpsactors.protocol.StreamHandle;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The events of one device, through its {@code EventPoolActor}: handles carry a generation, so a released
 * handle is an error reply (an {@link MpsRuntimeException}), never a dangling event.
 */
public final class DeviceEvents {
    private final RuntimeRefs refs;
    private final Asker asker;

    DeviceEvents(RuntimeRefs refs, Asker asker) {
        this.refs = refs;
        this.asker = asker;
    }

    /** A new event handle from the pool (fails when event-pool.max-events are held). */
    public CompletionStage<EventPoolProtocol.EventHandle> acquire() {
        return event(EventPoolProtocol.Acquire::new).thenApply(r -> ((EventPoolProtocol.Acquired) r).handle());
    }

    /** Records {@code event} on {@code stream}: it completes when the stream's work before it has executed. */
    public CompletionStage<EventPoolProtocol.Recorded> record(EventPoolProtocol.EventHandle event, StreamHandle stream) {
        return event(r -> new EventPoolProtocol.Record(event, stream, r)).thenApply(r -> (EventPoolProtocol.Recorded) r);
    }

    /** Makes {@code stream} wait on the device for {@code event}'s latest record. */
    public CompletionStage<EventPoolProtocol.WaitEncoded> waitFor(EventPoolProtocol.EventHandle event,
                                                                  StreamHandle stream) {
        return event(r -> new EventPoolProtocol.WaitForEvent(event, stream, r))
                .thenApply(r -> (EventPoolProtocol.WaitEncoded) r);
    }

    /** Whether {@code event}'s latest record has executed; never waits. */
    public CompletionStage<Boolean> isComplete(EventPoolProtocol.EventHandle event) {
        return event(r -> new EventPoolProtocol.Query(event, r))
                .thenApply(r -> ((EventPoolProtocol.EventStatus) r).complete());
    }

    /** Milliseconds between two completed records. */
    public CompletionStage<Double> elapsedMillis(EventPoolProtocol.EventHandle start, EventPoolProtocol.EventHandle end) {
        return event(r -> new EventPoolProtocol.Elapsed(start, end, r))
                .thenApply(r -> ((EventPoolProtocol.ElapsedTime) r).millis());
    }

    /** Gives the handle back; later use of it is refused by generation. */
    public CompletionStage<EventPoolProtocol.Released> release(EventPoolProtocol.EventHandle event) {
        return event(r -> new EventPoolProtocol.Release(event, r)).thenApply(r -> (EventPoolProtocol.Released) r);
    }

    /** The pool's counters. */
    public CompletionStage<EventPoolProtocol.PoolStats> stats() {
        return asker.ask(refs.eventPool(), EventPoolProtocol.GetPoolStats::new);
    }

    private CompletionStage<EventPoolProtocol.EventReply> event(
            org.apache.pekko.japi.function.Function<ActorRef<EventPoolProtocol.EventReply>, EventPoolProtocol.Command> f) {
        return asker.ask(refs.eventPool(), f).thenApply(reply -> {
            if (reply instanceof EventPoolProtocol.EventFailed failed) {
                throw new MpsRuntimeException(failed.reason());
            }
            return reply;
        });
    }
}
