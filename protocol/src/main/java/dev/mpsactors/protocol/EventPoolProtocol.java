package dev.mpsactors.protocol;

import org.apache.pekko.actor.typed.ActorRef;

/**
 * Messages of the EventPoolActor, the single owner of the device events that clients hold. Clients see
 * only {@link EventHandle}s: a slot and a generation. Releasing bumps the generation, so a handle used
 * after release gets an {@link EventFailed} reply naming the problem, never a dangling native pointer.
 */
public final class EventPoolProtocol {
    private EventPoolProtocol() {}

    public record EventHandle(int slot, long generation) {
        @Override
        public String toString() {
            return "event-" + slot + "#" + generation;
        }
    }

    public sealed interface Command permits Acquire, Record, WaitForEvent, Query, Elapsed, Release, GetPoolStats,
            Internal {}

    /** Messages private to the owner's implementation. */
    public non-sealed interface Internal extends Command {}

    /** Every request's reply is one of these. */
    public sealed interface EventReply permits Acquired, Recorded, WaitEncoded, EventStatus, ElapsedTime, Released,
            EventFailed {}

    public record Acquire(ActorRef<EventReply> replyTo) implements Command {}

    public record Acquired(EventHandle handle) implements EventReply {}

    /** Records the event on {@code stream}: it completes with that stream's next commit. */
    public record Record(EventHandle handle, StreamHandle stream, ActorRef<EventReply> replyTo) implements Command {}

    public record Recorded(EventHandle handle, StreamHandle stream, long point) implements EventReply {}

    /** Makes {@code stream} wait (on the device) for the event's latest record. */
    public record WaitForEvent(EventHandle handle, StreamHandle stream, ActorRef<EventReply> replyTo)
            implements Command {}

    public record WaitEncoded(EventHandle handle, StreamHandle stream) implements EventReply {}

    public record Query(EventHandle handle, ActorRef<EventReply> replyTo) implements Command {}

    public record EventStatus(EventHandle handle, boolean complete) implements EventReply {}

    /** Milliseconds between two completed records. */
    public record Elapsed(EventHandle start, EventHandle end, ActorRef<EventReply> replyTo) implements Command {}

    public record ElapsedTime(EventHandle start, EventHandle end, double millis) implements EventReply {}

    public record Release(EventHandle handle, ActorRef<EventReply> replyTo) implements Command {}

    public record Released(EventHandle handle) implements EventReply {}

    /** The request named a released or unknown handle, or the event is not in the state it needs. */
    public record EventFailed(EventHandle handle, String reason) implements EventReply {}

    public record GetPoolStats(ActorRef<PoolStats> replyTo) implements Command {}

    /** @param staleUses requests refused because their handle had been released */
    public record PoolStats(int capacity, int inUse, long acquired, long released, long staleUses) {}
}
