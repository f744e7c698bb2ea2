package dev.mpsactors.protocol;

import dev.mpsactors.nativemps.DeviceEvent;
import dev.mpsactors.nativemps.StreamTimeline;
import java.util.List;
import java.util.Objects;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Messages of a StreamActor, the single owner of one native stream, its open command buffer and its
 * timeline. Every request carries its own replyTo and gets exactly one reply.
 */
public final class StreamProtocol {
    private StreamProtocol() {}

    public sealed interface Command permits Submit, Flush, NotifyWhenComplete, WaitFor, ShareTimeline, RecordEvent,
            AllocateOnStream, FreeOnStream, GetStreamStats, InjectCrash, Internal {}

    /** Messages private to the owner's implementation (completions, adapted replies); not for clients. */
    public non-sealed interface Internal extends Command {}

    /**
     * Encodes the work in order into the open command buffer and, when {@code commit}, closes it on a new
     * timeline point. {@code onComplete}, if given, hears exactly once: when that point has executed, or at
     * once with a failure (point 0) if the submission was refused — so it alone is enough to wait on.
     */
    public record Submit(List<StreamWork> work, boolean commit, ActorRef<SubmitReply> replyTo,
                         ActorRef<PointCompleted> onComplete) implements Command {
        public Submit {
            work = List.copyOf(work);
            Objects.requireNonNull(replyTo, "replyTo");
            if (onComplete != null && !commit) {
                throw new IllegalArgumentException("onComplete needs commit = true: only a commit has a point");
            }
        }

        public Submit(List<StreamWork> work, boolean commit, ActorRef<SubmitReply> replyTo) {
            this(work, commit, replyTo, null);
        }
    }

    public sealed interface SubmitReply permits Submitted, SubmitFailed {}

    /** @param point the committed point, or 0 when the work stays in the open command buffer */
    public record Submitted(StreamHandle stream, long point, int openCommands) implements SubmitReply {}

    /** Nothing of the submission was kept: the open command buffer is as it was before. */
    public record SubmitFailed(StreamHandle stream, String reason) implements SubmitReply {}

    /** Commits the open command buffer (an empty one marks the timeline); replies Submitted with its point. */
    public record Flush(ActorRef<SubmitReply> replyTo) implements Command {}

    /** Replies once {@code point} has executed (at once if it already has). */
    public record NotifyWhenComplete(long point, ActorRef<PointCompleted> replyTo) implements Command {}

    /**
     * @param failure null when the point's work succeeded; otherwise the backend's message, or why the
     *                point will never be reported (the owner restarted, the point was never committed)
     * @param startedNanos  when the device started the point's first kernel or copy (the backend's clock,
     *                      System.nanoTime's on cpu); given to whoever waited for exactly this point before it
     *                      completed, 0 otherwise
     * @param finishedNanos when its last kernel or copy finished; 0 when not known
     */
    public record PointCompleted(StreamHandle stream, long point, String failure, long startedNanos,
                                 long finishedNanos) {
        /** A completion whose execution times are not known (answered later, or refused). */
        public PointCompleted(StreamHandle stream, long point, String failure) {
            this(stream, point, failure, 0, 0);
        }

        /** Whether {@link #startedNanos} and {@link #finishedNanos} hold this point's execution times. */
        public boolean timed() {
            return finishedNanos != 0;
        }

        public boolean succeeded() {
            return failure == null;
        }
    }

    /**
     * Encodes, into the open command buffer, a device-side wait for {@code point} of {@code other}: work
     * submitted to this stream afterwards runs after that point. The point must be committed there.
     */
    public record WaitFor(StreamHandle other, long point, ActorRef<WaitReply> replyTo) implements Command {}

    public sealed interface WaitReply permits WaitEncoded, WaitFailed {}

    public record WaitEncoded(StreamHandle stream, StreamHandle other, long point) implements WaitReply {}

    public record WaitFailed(StreamHandle stream, StreamHandle other, long point, String reason) implements WaitReply {}

    /**
     * Between stream owners: asks for a reference to this stream's timeline so the asker can encode a wait
     * on {@code point}. The reply transfers ownership of the timeline reference to the asker.
     */
    public record ShareTimeline(long point, ActorRef<TimelineReply> replyTo) implements Command {}

    public sealed interface TimelineReply permits TimelineShared, TimelineRefused {}

    /**
     * @param nativePoint the point to wait for on {@code timeline}: points are numbered on across owner
     *                    restarts, native timelines start again at 1 with each new native stream
     */
    public record TimelineShared(StreamHandle stream, StreamTimeline timeline, long nativePoint)
            implements TimelineReply {}

    public record TimelineRefused(StreamHandle stream, String reason) implements TimelineReply {}

    /**
     * From the event pool: encodes a record of {@code event} (a reference the stream now owns and closes)
     * into the open command buffer; it completes with the next commit.
     */
    public record RecordEvent(EventPoolProtocol.EventHandle handle, DeviceEvent event,
                              ActorRef<EventRecordReply> replyTo) implements Command {}

    public sealed interface EventRecordReply permits EventRecordEncoded, EventRecordFailed {}

    /** @param point the point the record completes with (the stream's next commit) */
    public record EventRecordEncoded(EventPoolProtocol.EventHandle handle, StreamHandle stream, long point)
            implements EventRecordReply {}

    public record EventRecordFailed(EventPoolProtocol.EventHandle handle, StreamHandle stream, String reason)
            implements EventRecordReply {}

    /**
     * Takes memory from this stream's arena: a buffer freed on this stream is reused at once by later work
     * on it (stream order makes that safe); otherwise the arena asks the allocator.
     */
    public record AllocateOnStream(long bytes, ActorRef<AllocatorProtocol.AllocationReply> replyTo)
            implements Command {}

    /** Returns a lease to this stream's arena, for this stream's later work (or the allocator on trim). */
    public record FreeOnStream(AllocatorProtocol.BufferLease lease) implements Command {}

    public record GetStreamStats(ActorRef<StreamStats> replyTo) implements Command {}

    /**
     * @param busyNanos   time the executor spent running command buffers
     * @param arenaCached bytes of freed buffers kept by this stream's arena
     */
    public record StreamStats(StreamHandle stream, long committedPoint, long completedPoint, long failedPoints,
                              long busyNanos, long arenaCachedBytes, int incarnation) {}

    /** Fault injection: the owner throws, so supervision restarts it. Ignored unless enabled in config. */
    public record InjectCrash(String reason) implements Command {}
}
