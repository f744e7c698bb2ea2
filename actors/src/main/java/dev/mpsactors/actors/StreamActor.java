package dev.mpsactors.actors;

import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStatus;
import dev.mpsactors.nativemps.NativeStream;
import dev.mpsactors.nativemps.StreamTimeline;
import dev.mpsactors.protocol.AllocatorProtocol;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol.AllocateOnStream;
import dev.mpsactors.protocol.StreamProtocol.Command;
import dev.mpsactors.protocol.StreamProtocol.EventRecordEncoded;
import dev.mpsactors.protocol.StreamProtocol.EventRecordFailed;
import dev.mpsactors.protocol.StreamProtocol.Flush;
import dev.mpsactors.protocol.StreamProtocol.FreeOnStream;
import dev.mpsactors.protocol.StreamProtocol.GetStreamStats;
import dev.mpsactors.protocol.StreamProtocol.InjectCrash;
import dev.mpsactors.protocol.StreamProtocol.Internal;
import dev.mpsactors.protocol.StreamProtocol.NotifyWhenComplete;
import dev.mpsactors.protocol.StreamProtocol.PointCompleted;
import dev.mpsactors.protocol.StreamProtocol.RecordEvent;
import dev.mpsactors.protocol.StreamProtocol.ShareTimeline;
import dev.mpsactors.protocol.StreamProtocol.StreamStats;
import dev.mpsactors.protocol.StreamProtocol.Submit;
import dev.mpsactors.protocol.StreamProtocol.SubmitFailed;
import dev.mpsactors.protocol.StreamProtocol.SubmitReply;
import dev.mpsactors.protocol.StreamProtocol.Submitted;
import dev.mpsactors.protocol.StreamProtocol.TimelineRefused;
import dev.mpsactors.protocol.StreamProtocol.TimelineReply;
import dev.mpsactors.protocol.StreamProtocol.TimelineShared;
import dev.mpsactors.protocol.StreamProtocol.WaitEncoded;
import dev.mpsactors.protocol.StreamProtocol.WaitFailed;
import dev.mpsactors.protocol.StreamProtocol.WaitFor;
import dev.mpsactors.protocol.StreamWork;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NavigableMap;
import java.util.TreeMap;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.PreRestart;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.StashBuffer;

/**
 * The single owner of one native stream: its open command buffer (encoder), its timeline, and its arena
 * of freed buffers. Duties:
 * <ul>
 *   <li>encode submitted work whole or not at all, commit, and report each point's completion to whoever
 *       asked (completions arrive from the native executor as messages);</li>
 *   <li>encode cross-stream waits: the other stream's timeline is a message away, so while one is being
 *       fetched, later work is stashed in order (never encoded ahead of the wait);</li>
 *   <li>keep freed buffers for reuse by this stream's later work (stream order makes that safe) and hand
 *       them back to the allocator when it keeps too many or stops.</li>
 * </ul>
 * Nothing here waits for the device (hazards 3 and 4 of docs/audit.md: a lock held across dispatch_sync, and an
 * encoder touched by threads that did not own it).
 *
 * <p>Points are numbered on across restarts: a restarted owner opens a new native stream (whose native
 * timeline starts at 1) and offsets it by the last point its predecessor committed. Completions of a
 * predecessor's points can no longer be confirmed and are answered with a failure, so memory freed after
 * them is never handed out again while it might still be in use.
 */
public final class StreamActor extends AbstractBehavior<Command> {
    /** Freed buffers of one size class the arena keeps before handing more back to the allocator. */
    static final int ARENA_BUFFERS_PER_CLASS = 8;
    /** Failed points remembered, so a late NotifyWhenComplete still learns its point failed. */
    private static final int REMEMBERED_FAILURES = 1024;

    /** What survives a restart of the owner: which incarnation runs and where its points start. */
    private static final class Lineage {
        int incarnation;
        long lastCommitted;
    }

    private record NativeCompleted(int incarnation, long nativePoint, NativeStatus status, String message,
                                   long startedNanos, long finishedNanos) implements Internal {}

    private record TimelineArrived(WaitFor request, TimelineReply reply, Throwable failure) implements Internal {}

    /** Checks the oldest uncompleted point against the watchdog timeout. */
    private enum WatchdogTick implements Internal { INSTANCE }

    /** Thrown to have the supervisor replace this owner and its native stream. */
    static final class StreamRetired extends RuntimeException {
        StreamRetired(String message) {
            super(message);
        }
    }

    private final StreamHandle handle;
    private final NativeStream stream;
    private final ActorRef<AllocatorProtocol.Command> allocator;
    private final StashBuffer<Command> stash;
    private final Duration askTimeout;
    private final FaultInjector faults;
    private final FaultInjector.Owner draws;
    private final Duration watchdog;
    /** Commit time of each point not yet completed (points ascend, so the first is the oldest). */
    private final ArrayDeque<long[]> outstanding = new ArrayDeque<>();
    /** The first point whose completion is withheld (injected hang); later completions are withheld too. */
    private long hungFrom = Long.MAX_VALUE;
    /** Why this incarnation retires itself, told to everything it still holds. */
    private String retiring;
    private final Lineage lineage;
    private final int incarnation;
    /** Points of this incarnation are pointBase + native point. */
    private final long pointBase;

    private long committed;
    private long completed;
    private long failedPoints;
    private long busyNanos;
    private final NavigableMap<Long, List<ActorRef<PointCompleted>>> waiters = new TreeMap<>();
    private final Map<Long, String> recentFailures = new LinkedHashMap<>(16, 0.75f, false) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Long, String> eldest) {
            return size() > REMEMBERED_FAILURES;
        }
    };
    /** The cross-stream wait being resolved; while set, ordered work is stashed. */
    private WaitFor resolving;
    private final Map<Long, ArrayDeque<AllocatorProtocol.BufferLease>> arena = new HashMap<>();
    private long arenaCachedBytes;
    /** Set when the whole runtime stops: the allocator may be gone, so buffers are closed here. */
    private boolean terminating;

    /** InjectCrash honoured when {@code faultInjection}; no injected point faults, no watchdog. */
    public static Behavior<Command> create(int id, NativeDevice device, ActorRef<AllocatorProtocol.Command> allocator,
                                           int stashCapacity, Duration askTimeout, boolean faultInjection) {
        return create(id, device, allocator, stashCapacity, askTimeout, faultInjection
                ? FaultInjector.crashesOnly()
                : FaultInjector.off(), Duration.ZERO);
    }

    /** @param watchdog how long a committed point may stay uncompleted before the stream retires; 0 = off */
    public static Behavior<Command> create(int id, NativeDevice device, ActorRef<AllocatorProtocol.Command> allocator,
                                           int stashCapacity, Duration askTimeout, FaultInjector faults,
                                           Duration watchdog) {
        Lineage lineage = new Lineage();
        return Behaviors.withStash(stashCapacity, stash -> Behaviors.withTimers(timers -> Behaviors.setup(ctx -> {
            if (!watchdog.isZero()) {
                // A quarter of the timeout: a hung point is caught between 1x and 1.25x the timeout.
                Duration every = watchdog.dividedBy(4).compareTo(Duration.ofMillis(10)) < 0
                        ? Duration.ofMillis(10) : watchdog.dividedBy(4);
                timers.startTimerWithFixedDelay(WatchdogTick.INSTANCE, WatchdogTick.INSTANCE, every);
            }
            return new StreamActor(ctx, new StreamHandle(id, ctx.getSelf()), device, allocator, stash, askTimeout,
                    faults, watchdog, lineage);
        })));
    }

    private StreamActor(ActorContext<Command> ctx, StreamHandle handle, NativeDevice device,
                        ActorRef<AllocatorProtocol.Command> allocator, StashBuffer<Command> stash, Duration askTimeout,
                        FaultInjector faults, Duration watchdog, Lineage lineage) {
        super(ctx);
        this.handle = handle;
        this.allocator = allocator;
        this.stash = stash;
        this.askTimeout = askTimeout;
        this.faults = faults;
        this.watchdog = watchdog;
        this.lineage = lineage;
        this.incarnation = ++lineage.incarnation;
        this.draws = faults.owner(handle + "#" + incarnation);
        this.pointBase = lineage.lastCommitted;
        this.committed = pointBase;
        this.completed = pointBase;
        ActorRef<Command> self = ctx.getSelf();
        int inc = incarnation;
        // Runs on the native executor thread: turn the completion into a message and return at once.
        this.stream = device.createStream((point, status, message, started, finished) ->
                self.tell(new NativeCompleted(inc, point, status, message, started, finished)));
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(NativeCompleted.class, this::onNativeCompleted)
                .onMessage(TimelineArrived.class, this::onTimelineArrived)
                .onMessage(ShareTimeline.class, this::onShareTimeline)
                .onMessage(NotifyWhenComplete.class, this::onNotifyWhenComplete)
                .onMessage(GetStreamStats.class, this::onGetStats)
                .onMessage(InjectCrash.class, this::onInjectCrash)
                .onMessage(WatchdogTick.class, m -> onWatchdogTick())
                .onMessage(Command.class, m -> resolving != null, this::stashWhileResolving)
                .onMessage(Submit.class, this::onSubmit)
                .onMessage(Flush.class, this::onFlush)
                .onMessage(WaitFor.class, this::onWaitFor)
                .onMessage(RecordEvent.class, this::onRecordEvent)
                .onMessage(AllocateOnStream.class, this::onAllocateOnStream)
                .onMessage(FreeOnStream.class, this::onFreeOnStream)
                .onSignal(PreRestart.class, s -> stopped("restarted after a failure", false))
                .onSignal(PostStop.class, s -> stopped("stopped", true))
                .build();
    }

    // ---- ordered work: encode and commit ------------------------------------------------------------

    private Behavior<Command> onSubmit(Submit m) {
        int before = stream.openCommands();
        try {
            for (StreamWork work : m.work()) {
                encode(work);
            }
        } catch (RuntimeException e) {
            stream.truncateOpen(before);
            m.replyTo().tell(new SubmitFailed(handle, describe(e)));
            if (m.onComplete() != null) {
                m.onComplete().tell(new PointCompleted(handle, 0, "submission refused: " + describe(e)));
            }
            return this;
        }
        if (!m.commit()) {
            m.replyTo().tell(new Submitted(handle, 0, stream.openCommands()));
            return this;
        }
        long point = commit();
        if (m.onComplete() != null) {
            waiters.computeIfAbsent(point, p -> new ArrayList<>(1)).add(m.onComplete());
        }
        m.replyTo().tell(new Submitted(handle, point, 0));
        return this;
    }

    private void encode(StreamWork work) {
        if (work instanceof StreamWork.KernelCall k) {
            stream.encodeKernel(k.pipeline(), k.args());
        } else if (work instanceof StreamWork.ProgramCall p) {
            stream.encodeProgram(p.program(), p.slots());
        } else if (work instanceof StreamWork.Upload u) {
            stream.encodeUpload(u.source(), u.target(), u.targetOffset());
        } else if (work instanceof StreamWork.Download d) {
            stream.encodeDownload(d.source(), d.sourceOffset(), d.target());
        } else if (work instanceof StreamWork.Copy c) {
            stream.encodeCopy(c.source(), c.sourceOffset(), c.target(), c.targetOffset(), c.bytes());
        }
    }

    private long commit() {
        long point = pointBase + stream.commit();
        committed = point;
        lineage.lastCommitted = point;
        if (!watchdog.isZero()) {
            outstanding.add(new long[] {point, System.nanoTime()});
        }
        if (hungFrom == Long.MAX_VALUE && draws.hang()) {
            hungFrom = point; // this point, and so every later one, will never be reported complete
        }
        return point;
    }

    private Behavior<Command> onWatchdogTick() {
        long[] oldest = outstanding.peek();
        if (oldest == null) {
            return this;
        }
        long waited = System.nanoTime() - oldest[1];
        if (waited <= watchdog.toNanos()) {
            return this;
        }
        retiring = "retired by the watchdog: point " + oldest[0] + " did not complete within " + watchdog
                + " of its commit (a hung command buffer; mps-actors.stream-watchdog)";
        getContext().getLog().error("{} {}", handle, retiring);
        throw new StreamRetired(handle + " " + retiring);
    }

    private Behavior<Command> onFlush(Flush m) {
        try {
            m.replyTo().tell(new Submitted(handle, commit(), 0));
        } catch (RuntimeException e) {
            m.replyTo().tell(new SubmitFailed(handle, describe(e)));
        }
        return this;
    }

    private Behavior<Command> onRecordEvent(RecordEvent m) {
        try (var event = m.event()) {
            stream.encodeEventRecord(event);
            m.replyTo().tell(new EventRecordEncoded(m.handle(), handle, committed + 1));
        } catch (RuntimeException e) {
            m.replyTo().tell(new EventRecordFailed(m.handle(), handle, describe(e)));
        }
        return this;
    }

    // ---- cross-stream waits -------------------------------------------------------------------------

    private Behavior<Command> onWaitFor(WaitFor m) {
        if (m.other().id() == handle.id()) {
            // This stream's own committed points already precede anything encoded from now on.
            if (m.point() >= 1 && m.point() <= committed) {
                m.replyTo().tell(new WaitEncoded(handle, m.other(), m.point()));
            } else {
                m.replyTo().tell(new WaitFailed(handle, m.other(), m.point(), notCommitted(m.point())));
            }
            return this;
        }
        resolving = m;
        Ask.ask(getContext(), TimelineReply.class, m.other().owner(), askTimeout,
                replyTo -> new ShareTimeline(m.point(), replyTo),
                (reply, failure) -> new TimelineArrived(m, reply, failure));
        return this;
    }

    private Behavior<Command> onTimelineArrived(TimelineArrived m) {
        WaitFor request = m.request();
        if (request != resolving) {
            // An answer for a predecessor's request (cannot happen within one incarnation); drop its reference.
            if (m.reply() instanceof TimelineShared shared) {
                shared.timeline().close();
            }
            return this;
        }
        resolving = null;
        if (m.reply() instanceof TimelineShared shared) {
            try (StreamTimeline timeline = shared.timeline()) {
                stream.encodeWait(timeline, shared.nativePoint());
                request.replyTo().tell(new WaitEncoded(handle, request.other(), request.point()));
            } catch (RuntimeException e) {
                request.replyTo().tell(new WaitFailed(handle, request.other(), request.point(), describe(e)));
            }
        } else if (m.reply() instanceof TimelineRefused refused) {
            request.replyTo().tell(new WaitFailed(handle, request.other(), request.point(), refused.reason()));
        } else {
            request.replyTo().tell(new WaitFailed(handle, request.other(), request.point(),
                    request.other() + " did not share its timeline: " + describe(m.failure())));
        }
        return stash.unstashAll(this);
    }

    private Behavior<Command> stashWhileResolving(Command m) {
        if (stash.isFull()) {
            fail(m, handle + " holds " + stash.size() + " messages while it resolves a wait for " + resolving.other()
                    + " (mps-actors.stream-stash-capacity)");
        } else {
            stash.stash(m);
        }
        return this;
    }

    private Behavior<Command> onShareTimeline(ShareTimeline m) {
        if (m.point() <= pointBase && m.point() >= 1) {
            m.replyTo().tell(new TimelineRefused(handle, "point " + m.point() + " of " + handle
                    + " was committed before its owner restarted; it can no longer be waited for"));
        } else if (m.point() < 1 || m.point() > committed) {
            m.replyTo().tell(new TimelineRefused(handle, notCommitted(m.point())));
        } else {
            m.replyTo().tell(new TimelineShared(handle, stream.timeline(), m.point() - pointBase));
        }
        return this;
    }

    // ---- completions --------------------------------------------------------------------------------

    private Behavior<Command> onNotifyWhenComplete(NotifyWhenComplete m) {
        if (m.point() >= 1 && m.point() <= pointBase) {
            m.replyTo().tell(new PointCompleted(handle, m.point(), "point " + m.point() + " of " + handle
                    + " was committed before its owner restarted; its completion cannot be confirmed"));
        } else if (m.point() < 1 || m.point() > committed) {
            m.replyTo().tell(new PointCompleted(handle, m.point(), notCommitted(m.point())));
        } else if (m.point() <= completed) {
            m.replyTo().tell(new PointCompleted(handle, m.point(), recentFailures.get(m.point())));
        } else {
            waiters.computeIfAbsent(m.point(), p -> new ArrayList<>(1)).add(m.replyTo());
        }
        return this;
    }

    private Behavior<Command> onNativeCompleted(NativeCompleted m) {
        if (m.incarnation() != incarnation) {
            return this; // a predecessor's work finishing; its waiters were answered when it stopped
        }
        long point = pointBase + m.nativePoint();
        if (point >= hungFrom) {
            return this; // injected hang: this completion is never reported; the watchdog will retire the stream
        }
        completed = point;
        while (!outstanding.isEmpty() && outstanding.peek()[0] <= point) {
            outstanding.poll();
        }
        busyNanos += Math.max(0, m.finishedNanos() - m.startedNanos());
        String failure = null;
        if (m.status() != NativeStatus.OK) {
            failure = m.status() + ": " + m.message();
        } else if (draws.failKernel()) {
            failure = "KERNEL_FAILED: injected kernel failure (mps-actors.fault-injection.kernel-failure-rate)";
        }
        if (failure != null) {
            failedPoints++;
            recentFailures.put(point, failure);
        }
        NavigableMap<Long, List<ActorRef<PointCompleted>>> due = waiters.headMap(point, true);
        for (Map.Entry<Long, List<ActorRef<PointCompleted>>> e : due.entrySet()) {
            boolean thisPoint = e.getKey() == point;
            String f = thisPoint ? failure : recentFailures.get(e.getKey());
            for (ActorRef<PointCompleted> waiter : e.getValue()) {
                waiter.tell(thisPoint
                        ? new PointCompleted(handle, point, f, m.startedNanos(), m.finishedNanos())
                        : new PointCompleted(handle, e.getKey(), f));
            }
        }
        due.clear();
        if (failure != null) {
            // After a failed command buffer the stream's state is unknown (on a GPU an execution error is
            // sticky): later points are answered as unconfirmed and a fresh stream takes over.
            retiring = "retired after point " + point + " failed (" + failure + ")";
            throw new StreamRetired(handle + " " + retiring);
        }
        return this;
    }

    // ---- arena --------------------------------------------------------------------------------------

    private Behavior<Command> onAllocateOnStream(AllocateOnStream m) {
        long classBytes;
        try {
            classBytes = SizeClasses.classBytes(m.bytes());
        } catch (IllegalArgumentException e) {
            m.replyTo().tell(new AllocatorProtocol.AllocationFailed(m.bytes(), e.getMessage()));
            return this;
        }
        ArrayDeque<AllocatorProtocol.BufferLease> free = arena.get(classBytes);
        if (free != null && !free.isEmpty()) {
            AllocatorProtocol.BufferLease lease = free.pop();
            arenaCachedBytes -= lease.classBytes();
            // Reused at once: work encoded from now on runs after everything that used it on this stream.
            m.replyTo().tell(new AllocatorProtocol.Allocated(
                    new AllocatorProtocol.BufferLease(lease.id(), lease.buffer(), m.bytes())));
        } else {
            allocator.tell(new AllocatorProtocol.Allocate(m.bytes(), m.replyTo()));
        }
        return this;
    }

    private Behavior<Command> onFreeOnStream(FreeOnStream m) {
        ArrayDeque<AllocatorProtocol.BufferLease> free = arena.computeIfAbsent(m.lease().classBytes(),
                c -> new ArrayDeque<>());
        if (free.size() >= ARENA_BUFFERS_PER_CLASS) {
            returnToAllocator(m.lease());
        } else {
            free.push(m.lease());
            arenaCachedBytes += m.lease().classBytes();
        }
        return this;
    }

    // ---- stats, faults, shutdown --------------------------------------------------------------------

    private Behavior<Command> onGetStats(GetStreamStats m) {
        m.replyTo().tell(new StreamStats(handle, committed, completed, failedPoints, busyNanos, arenaCachedBytes,
                incarnation));
        return this;
    }

    private Behavior<Command> onInjectCrash(InjectCrash m) {
        if (!faults.enabled()) {
            getContext().getLog().warn("{} ignored InjectCrash: mps-actors.fault-injection.enabled is off", handle);
            return this;
        }
        faults.countCrash();
        throw new IllegalStateException("injected crash of " + handle + ": " + m.reason());
    }

    /**
     * Answers everything this incarnation still holds and releases its native stream without waiting.
     * {@code terminal}: the whole runtime is stopping, so the allocator may be gone too.
     */
    private Behavior<Command> stopped(String why, boolean terminal) {
        terminating = terminal;
        String reason = handle + " " + (retiring != null ? retiring : why);
        if (resolving != null) {
            resolving.replyTo().tell(new WaitFailed(handle, resolving.other(), resolving.point(), reason));
            resolving = null;
        }
        stash.forEach(m -> fail(m, reason));
        for (Map.Entry<Long, List<ActorRef<PointCompleted>>> e : waiters.entrySet()) {
            for (ActorRef<PointCompleted> waiter : e.getValue()) {
                waiter.tell(new PointCompleted(handle, e.getKey(), reason + " before point " + e.getKey()
                        + " completed; its completion cannot be confirmed"));
            }
        }
        waiters.clear();
        // On restart, arena buffers go back to the allocator, which frees rather than reuses them (a
        // predecessor's point cannot be confirmed). At shutdown the allocator may already be gone: close
        // them here; the native layer frees each after the pending work that uses it.
        for (ArrayDeque<AllocatorProtocol.BufferLease> free : arena.values()) {
            for (AllocatorProtocol.BufferLease lease : free) {
                returnToAllocator(lease);
            }
        }
        arena.clear();
        arenaCachedBytes = 0;
        stream.close();
        return this;
    }

    /** The failure reply for a request this owner will not carry out. */
    private void fail(Command m, String reason) {
        if (m instanceof Submit s) {
            s.replyTo().tell(new SubmitFailed(handle, reason));
            if (s.onComplete() != null) {
                s.onComplete().tell(new PointCompleted(handle, 0, reason));
            }
        } else if (m instanceof Flush f) {
            f.replyTo().tell(new SubmitFailed(handle, reason));
        } else if (m instanceof WaitFor w) {
            w.replyTo().tell(new WaitFailed(handle, w.other(), w.point(), reason));
        } else if (m instanceof RecordEvent r) {
            r.event().close();
            r.replyTo().tell(new EventRecordFailed(r.handle(), handle, reason));
        } else if (m instanceof AllocateOnStream a) {
            a.replyTo().tell(new AllocatorProtocol.AllocationFailed(a.bytes(), reason));
        } else if (m instanceof FreeOnStream f) {
            returnToAllocator(f.lease());
        } else if (m instanceof NotifyWhenComplete n) {
            n.replyTo().tell(new PointCompleted(handle, n.point(), reason));
        } else if (m instanceof ShareTimeline s) {
            s.replyTo().tell(new TimelineRefused(handle, reason));
        } else if (m instanceof GetStreamStats g) {
            onGetStats(g);
        }
        // InjectCrash and internal messages need no answer.
    }

    /** Other streams may reuse the lease only after this stream's work that may touch it has executed. */
    private void returnToAllocator(AllocatorProtocol.BufferLease lease) {
        if (terminating) {
            lease.buffer().close(); // the native layer frees it after the pending work that uses it
        } else if (committed == 0) {
            allocator.tell(new AllocatorProtocol.Free(lease)); // no work was ever committed here
        } else {
            allocator.tell(new AllocatorProtocol.FreeAfter(lease, handle, committed));
        }
    }

    private String notCommitted(long point) {
        return "point " + point + " is not committed on " + handle + " (its last commit is " + committed + ")";
    }

    private static String describe(Throwable e) {
        return e == null ? "unknown failure" : e.getClass().getSimpleName() + ": " + e.getMessage();
    }
}
