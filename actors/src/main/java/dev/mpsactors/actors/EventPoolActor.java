package dev.mpsactors.actors;

import dev.mpsactors.nativemps.DeviceEvent;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeException;
import dev.mpsactors.protocol.EventPoolProtocol.Acquire;
import dev.mpsactors.protocol.EventPoolProtocol.Acquired;
import dev.mpsactors.protocol.EventPoolProtocol.Command;
import dev.mpsactors.protocol.EventPoolProtocol.Elapsed;
import dev.mpsactors.protocol.EventPoolProtocol.ElapsedTime;
import dev.mpsactors.protocol.EventPoolProtocol.EventFailed;
import dev.mpsactors.protocol.EventPoolProtocol.EventHandle;
import dev.mpsactors.protocol.EventPoolProtocol.EventReply;
import dev.mpsactors.protocol.EventPoolProtocol.EventStatus;
import dev.mpsactors.protocol.EventPoolProtocol.GetPoolStats;
import dev.mpsactors.protocol.EventPoolProtocol.Internal;
import dev.mpsactors.protocol.EventPoolProtocol.PoolStats;
import dev.mpsactors.protocol.EventPoolProtocol.Query;
import dev.mpsactors.protocol.EventPoolProtocol.Record;
import dev.mpsactors.protocol.EventPoolProtocol.Recorded;
import dev.mpsactors.protocol.EventPoolProtocol.Release;
import dev.mpsactors.protocol.EventPoolProtocol.Released;
import dev.mpsactors.protocol.EventPoolProtocol.WaitEncoded;
import dev.mpsactors.protocol.EventPoolProtocol.WaitForEvent;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.TimeoutException;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.PreRestart;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;

/**
 * The single owner of the device events that clients hold. Duties:
 * <ul>
 *   <li>hand out {@link EventHandle}s (slot, generation), never native pointers: a handle used after its
 *       release is answered with {@link EventFailed}, never a dangling event (hazard 2 of docs/audit.md was a raw
 *       pointer used outside the pool's lock while another thread released it);</li>
 *   <li>record events on streams by giving the stream's owner its own native reference
 *       ({@link DeviceEvent#share()}), so releasing here never frees an event a pending record uses;</li>
 *   <li>remember each event's latest record (stream, point), so a wait for the event becomes a
 *       cross-stream wait for that point;</li>
 *   <li>answer queries and elapsed times from what the stream executors have published, never waiting.</li>
 * </ul>
 *
 * <p>Generations are drawn from one counter for all slots and survive restarts of this owner (the counter
 * lives outside the restarted behaviour), so a handle names one acquisition for good: after a release or
 * a restart no later handle can ever be mistaken for it.
 */
public final class EventPoolActor extends AbstractBehavior<Command> {
    static final String MAX_EVENTS_KEY = "mps-actors.event-pool.max-events";

    /** What outlives a restart: the generations already handed out. */
    private static final class Lineage {
        long lastGeneration;
    }

    /** One slot; {@code event == null} while free. Owned by this actor alone, like every field here. */
    private static final class Slot {
        long generation;
        DeviceEvent event;
        /** The latest record the stream owner confirmed, or null while never recorded. */
        StreamHandle recordStream;
        long recordPoint;
    }

    private record RecordAnswered(EventHandle handle, StreamHandle stream, ActorRef<EventReply> replyTo,
                                  StreamProtocol.EventRecordReply reply, Throwable failure) implements Internal {}

    private record WaitAnswered(EventHandle handle, StreamHandle stream, ActorRef<EventReply> replyTo,
                                StreamProtocol.WaitReply reply, Throwable failure) implements Internal {}

    private final NativeDevice device;
    private final int maxEvents;
    private final Duration askTimeout;
    private final Lineage lineage;
    /** Handles with a generation up to this one were issued by an earlier incarnation, whose events are gone. */
    private final long generationAtStart;
    private final List<Slot> slots = new ArrayList<>();
    /** Indices of free slots; a free slot has no native event (a fresh one is made on its next Acquire). */
    private final ArrayDeque<Integer> freeSlots = new ArrayDeque<>();
    private int inUse;
    private long acquired;
    private long released;
    private long staleUses;

    public static Behavior<Command> create(NativeDevice device, int maxEvents, Duration askTimeout) {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(askTimeout, "askTimeout");
        if (maxEvents < 1) {
            throw new IllegalArgumentException(MAX_EVENTS_KEY + " must be >= 1, got " + maxEvents);
        }
        Lineage lineage = new Lineage();
        return Behaviors.setup(ctx -> new EventPoolActor(ctx, device, maxEvents, askTimeout, lineage));
    }

    private EventPoolActor(ActorContext<Command> ctx, NativeDevice device, int maxEvents, Duration askTimeout,
                           Lineage lineage) {
        super(ctx);
        this.device = device;
        this.maxEvents = maxEvents;
        this.askTimeout = askTimeout;
        this.lineage = lineage;
        this.generationAtStart = lineage.lastGeneration;
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Acquire.class, this::onAcquire)
                .onMessage(Record.class, this::onRecord)
                .onMessage(RecordAnswered.class, this::onRecordAnswered)
                .onMessage(WaitForEvent.class, this::onWaitForEvent)
                .onMessage(WaitAnswered.class, this::onWaitAnswered)
                .onMessage(Query.class, this::onQuery)
                .onMessage(Elapsed.class, this::onElapsed)
                .onMessage(Release.class, this::onRelease)
                .onMessage(GetPoolStats.class, this::onGetPoolStats)
                .onSignal(PreRestart.class, s -> closeAll())
                .onSignal(PostStop.class, s -> closeAll())
                .build();
    }

    // ---- acquire / release --------------------------------------------------------------------------

    private Behavior<Command> onAcquire(Acquire m) {
        if (inUse >= maxEvents) {
            m.replyTo().tell(new EventFailed(null, "event pool is full: " + inUse + " events in use, the limit is "
                    + maxEvents + " (" + MAX_EVENTS_KEY + "); release events or raise the limit"));
            return this;
        }
        // Never a reused native event: a late completion of an old record would mark the new holder's
        // event complete.
        DeviceEvent event;
        try {
            event = device.createEvent();
        } catch (RuntimeException e) {
            m.replyTo().tell(new EventFailed(null, "could not create a device event: " + e.getMessage()));
            return this;
        }
        int index;
        Slot slot;
        if (freeSlots.isEmpty()) {
            index = slots.size();
            slot = new Slot();
            slots.add(slot);
        } else {
            index = freeSlots.pop();
            slot = slots.get(index);
        }
        slot.generation = ++lineage.lastGeneration;
        slot.event = event;
        slot.recordStream = null;
        slot.recordPoint = 0;
        inUse++;
        acquired++;
        m.replyTo().tell(new Acquired(new EventHandle(index, slot.generation)));
        return this;
    }

    private Behavior<Command> onRelease(Release m) {
        Slot slot = held(m.handle(), m.replyTo());
        if (slot == null) {
            return this;
        }
        // Safe while records are pending: each stream owner holds its own reference to the native event.
        slot.event.close();
        slot.event = null;
        slot.recordStream = null;
        // The slot's generation no longer matches any handle: the released one is stale from now on.
        slot.generation = 0;
        freeSlots.push(m.handle().slot());
        inUse--;
        released++;
        m.replyTo().tell(new Released(m.handle()));
        return this;
    }

    // ---- record / wait ------------------------------------------------------------------------------

    private Behavior<Command> onRecord(Record m) {
        Slot slot = held(m.handle(), m.replyTo());
        if (slot == null) {
            return this;
        }
        StreamHandle stream = m.stream();
        // The stream owner closes this reference once the record is encoded; ours stays valid meanwhile.
        DeviceEvent token = slot.event.share();
        try {
            Ask.ask(getContext(), StreamProtocol.EventRecordReply.class, stream.owner(), askTimeout,
                    replyTo -> new StreamProtocol.RecordEvent(m.handle(), token, replyTo),
                    (reply, failure) -> new RecordAnswered(m.handle(), stream, m.replyTo(), reply, failure));
        } catch (RuntimeException e) {
            // The request never left: the reference is still ours to close. (After a timeout it is not: the
            // stream may be encoding it right now, and it closes it.)
            token.close();
            m.replyTo().tell(new EventFailed(m.handle(), "could not ask " + stream + " to record: " + e));
        }
        return this;
    }

    private Behavior<Command> onRecordAnswered(RecordAnswered m) {
        if (m.reply() instanceof StreamProtocol.EventRecordEncoded encoded) {
            Slot slot = slotOf(m.handle());
            // A record confirmed after the handle was released belongs to nobody; the new holder of the slot
            // has a fresh event and its own records.
            if (slot != null && slot.generation == m.handle().generation()) {
                slot.recordStream = encoded.stream();
                slot.recordPoint = encoded.point();
            }
            m.replyTo().tell(new Recorded(m.handle(), encoded.stream(), encoded.point()));
        } else if (m.reply() instanceof StreamProtocol.EventRecordFailed failed) {
            m.replyTo().tell(new EventFailed(m.handle(), m.stream() + " could not record " + m.handle() + ": "
                    + failed.reason()));
        } else {
            m.replyTo().tell(new EventFailed(m.handle(), m.stream() + " did not confirm the record of " + m.handle()
                    + ": " + describe(m.failure())));
        }
        return this;
    }

    private Behavior<Command> onWaitForEvent(WaitForEvent m) {
        Slot slot = held(m.handle(), m.replyTo());
        if (slot == null) {
            return this;
        }
        if (slot.recordStream == null) {
            m.replyTo().tell(new EventFailed(m.handle(), m.handle() + " was never recorded: nothing to wait for"));
            return this;
        }
        // The event completes with its record's point, so waiting for the event is waiting for that point.
        StreamHandle recordStream = slot.recordStream;
        long recordPoint = slot.recordPoint;
        StreamHandle stream = m.stream();
        Ask.ask(getContext(), StreamProtocol.WaitReply.class, stream.owner(), askTimeout,
                replyTo -> new StreamProtocol.WaitFor(recordStream, recordPoint, replyTo),
                (reply, failure) -> new WaitAnswered(m.handle(), stream, m.replyTo(), reply, failure));
        return this;
    }

    private Behavior<Command> onWaitAnswered(WaitAnswered m) {
        if (m.reply() instanceof StreamProtocol.WaitEncoded) {
            m.replyTo().tell(new WaitEncoded(m.handle(), m.stream()));
        } else if (m.reply() instanceof StreamProtocol.WaitFailed failed) {
            m.replyTo().tell(new EventFailed(m.handle(), m.stream() + " could not wait for " + m.handle() + ": "
                    + failed.reason()));
        } else {
            m.replyTo().tell(new EventFailed(m.handle(), m.stream() + " did not confirm the wait for " + m.handle()
                    + ": " + describe(m.failure())));
        }
        return this;
    }

    // ---- query / elapsed ----------------------------------------------------------------------------

    private Behavior<Command> onQuery(Query m) {
        Slot slot = held(m.handle(), m.replyTo());
        if (slot == null) {
            return this;
        }
        try {
            m.replyTo().tell(new EventStatus(m.handle(), slot.event.isComplete()));
        } catch (NativeException e) {
            // STATE: never recorded; the native message says so.
            m.replyTo().tell(new EventFailed(m.handle(), m.handle() + ": " + e.getMessage()));
        }
        return this;
    }

    private Behavior<Command> onElapsed(Elapsed m) {
        Slot start = held(m.start(), m.replyTo());
        if (start == null) {
            return this;
        }
        Slot end = held(m.end(), m.replyTo());
        if (end == null) {
            return this;
        }
        try {
            m.replyTo().tell(new ElapsedTime(m.start(), m.end(), end.event.elapsedMillisSince(start.event)));
        } catch (NativeException e) {
            // STATE: one of them was never recorded or its latest record has not executed yet.
            m.replyTo().tell(new EventFailed(m.end(), "elapsed time from " + m.start() + " to " + m.end() + ": "
                    + e.getMessage()));
        }
        return this;
    }

    private Behavior<Command> onGetPoolStats(GetPoolStats m) {
        m.replyTo().tell(new PoolStats(maxEvents, inUse, acquired, released, staleUses));
        return this;
    }

    // ---- handles ------------------------------------------------------------------------------------

    /** The slot a live handle names; otherwise answers EventFailed saying why and returns null. */
    private Slot held(EventHandle handle, ActorRef<EventReply> replyTo) {
        if (handle == null) {
            replyTo.tell(new EventFailed(null, "no event handle given"));
            return null;
        }
        Slot slot = slotOf(handle);
        if (slot != null && slot.event != null && slot.generation == handle.generation()) {
            return slot;
        }
        String reason;
        if (handle.generation() <= 0 || handle.generation() > lineage.lastGeneration) {
            reason = handle + " was never handed out by this event pool";
        } else if (handle.generation() <= generationAtStart) {
            staleUses++;
            reason = handle + " was acquired before the event pool restarted; its event is gone, acquire a new one";
        } else if (slot == null) {
            reason = handle + " names no slot of this event pool";
        } else {
            staleUses++;
            reason = handle + " was released; acquire a new event";
        }
        replyTo.tell(new EventFailed(handle, reason));
        return null;
    }

    private Slot slotOf(EventHandle handle) {
        int index = handle.slot();
        return index >= 0 && index < slots.size() ? slots.get(index) : null;
    }

    private static String describe(Throwable failure) {
        if (failure instanceof TimeoutException) {
            return "no answer in time (" + failure.getMessage() + ")";
        }
        return failure == null ? "no answer" : failure.toString();
    }

    private Behavior<Command> closeAll() {
        for (Slot slot : slots) {
            if (slot.event != null) {
                slot.event.close();
                slot.event = null;
            }
        }
        return this;
    }
}
