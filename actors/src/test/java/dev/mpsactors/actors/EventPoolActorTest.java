package dev.mpsactors.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.DeviceOptions;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeStream;
import dev.mpsactors.protocol.EventPoolProtocol;
import dev.mpsactors.protocol.EventPoolProtocol.Acquire;
import dev.mpsactors.protocol.EventPoolProtocol.Acquired;
import dev.mpsactors.protocol.EventPoolProtocol.Elapsed;
import dev.mpsactors.protocol.EventPoolProtocol.ElapsedTime;
import dev.mpsactors.protocol.EventPoolProtocol.EventFailed;
import dev.mpsactors.protocol.EventPoolProtocol.EventHandle;
import dev.mpsactors.protocol.EventPoolProtocol.EventReply;
import dev.mpsactors.protocol.EventPoolProtocol.EventStatus;
import dev.mpsactors.protocol.EventPoolProtocol.GetPoolStats;
import dev.mpsactors.protocol.EventPoolProtocol.PoolStats;
import dev.mpsactors.protocol.EventPoolProtocol.Query;
import dev.mpsactors.protocol.EventPoolProtocol.Record;
import dev.mpsactors.protocol.EventPoolProtocol.Recorded;
import dev.mpsactors.protocol.EventPoolProtocol.Release;
import dev.mpsactors.protocol.EventPoolProtocol.Released;
import dev.mpsactors.protocol.EventPoolProtocol.WaitForEvent;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.protocol.StreamProtocol.RecordEvent;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The event pool hands out handles, never native events: a released handle is an error reply (seed
 * hazard 2 was a use-after-free of a released event), every record goes through the stream's owner
 * (here a probe playing that part, encoding into a real native stream), and no native event outlives
 * its release or the pool.
 */
class EventPoolActorTest {
    private static final Duration ASK_TIMEOUT = Duration.ofSeconds(5);
    private static final Duration BOUND = Duration.ofSeconds(10);

    private static ActorTestKit testKit;
    private static NativeDevice device;
    /** The native stream the probe "owner" encodes into; only the test thread touches it. */
    private static NativeStream nativeStream;

    private TestProbe<StreamProtocol.Command> streamOwner;
    private StreamHandle stream;
    private TestProbe<EventReply> client;
    private ActorRef<EventPoolProtocol.Command> pool;

    @BeforeAll
    static void start() {
        testKit = ActorTestKit.create();
        device = NativeDevice.open(DeviceOptions.cpu());
        nativeStream = device.createStream((point, status, message, started, finished) -> { });
    }

    @AfterAll
    static void stop() {
        try {
            testKit.shutdownTestKit();
            nativeStream.close();
            awaitTrue("every native object released", () -> device.liveObjects().isEmpty());
        } finally {
            // Throws BUSY if anything leaked: the last assertion of the class.
            device.close();
        }
    }

    @BeforeEach
    void spawnPool() {
        streamOwner = testKit.createTestProbe(StreamProtocol.Command.class);
        stream = new StreamHandle(0, streamOwner.getRef());
        client = testKit.createTestProbe(EventReply.class);
        pool = testKit.spawn(EventPoolActor.create(device, 16, ASK_TIMEOUT));
    }

    @AfterEach
    void stopPool() {
        testKit.stop(pool, BOUND);
        awaitTrue("the pool's events are closed when it stops", () -> device.liveObjects().events() == 0);
    }

    // ---- specifications -----------------------------------------------------------------------------

    @Test
    void anEventRecordedThroughItsStreamOwnerCompletesWithTheStreamsNextCommit() {
        EventHandle h = acquire();
        pool.tell(new Record(h, stream, client.getRef()));
        RecordEvent request = streamOwner.expectMessageClass(RecordEvent.class, BOUND);
        assertEquals(h, request.handle());
        assertFalse(request.event().isClosed(), "the stream owner gets a usable reference of its own");
        long point = encodeRecord(request);
        Recorded recorded = client.expectMessageClass(Recorded.class, BOUND);
        assertEquals(new Recorded(h, stream, point), recorded);

        assertEquals(new EventStatus(h, false), ask(new Query(h, client.getRef())),
                "recorded but not committed yet");
        commitAndAwait(point);
        assertEquals(new EventStatus(h, true), ask(new Query(h, client.getRef())));
        release(h);
    }

    @Test
    void elapsedTimeIsMeasuredBetweenTwoCompletedRecords() {
        EventHandle start = acquire();
        EventHandle end = acquire();
        recordOnStream(start);
        long point = recordOnStream(end);

        EventFailed early = (EventFailed) ask(new Elapsed(start, end, client.getRef()));
        assertTrue(early.reason().contains("not completed"), early.reason());

        commitAndAwait(point);
        ElapsedTime elapsed = (ElapsedTime) ask(new Elapsed(start, end, client.getRef()));
        assertTrue(elapsed.millis() >= 0, "elapsed " + elapsed.millis());
        release(start);
        release(end);
    }

    @Test
    void aNeverRecordedEventCannotBeQueriedTimedOrWaitedFor() {
        EventHandle h = acquire();
        EventHandle recorded = acquire();
        commitAndAwait(recordOnStream(recorded));

        assertFailure(ask(new Query(h, client.getRef())), "never recorded");
        assertFailure(ask(new Elapsed(recorded, h, client.getRef())), "never recorded");
        assertFailure(ask(new WaitForEvent(h, stream, client.getRef())), "never recorded");
        streamOwner.expectNoMessage(Duration.ofMillis(100));
        release(h);
        release(recorded);
    }

    @Test
    void aHandleUsedAfterReleaseIsAnErrorReplyNeverADanglingEvent() {
        EventHandle h = acquire();
        EventHandle other = acquire();
        commitAndAwait(recordOnStream(h));
        commitAndAwait(recordOnStream(other));
        release(h);

        assertFailure(ask(new Query(h, client.getRef())), h + " was released");
        assertFailure(ask(new Record(h, stream, client.getRef())), h + " was released");
        assertFailure(ask(new WaitForEvent(h, stream, client.getRef())), h + " was released");
        assertFailure(ask(new Elapsed(other, h, client.getRef())), h + " was released");
        assertFailure(ask(new Release(h, client.getRef())), h + " was released");
        streamOwner.expectNoMessage(Duration.ofMillis(100));

        PoolStats stats = stats();
        assertEquals(5, stats.staleUses());
        assertEquals(1, stats.inUse());
        assertEquals(2, stats.acquired());
        assertEquals(1, stats.released());
        release(other);
    }

    @Test
    void aReleasedSlotIsHandedOutAgainWithANewGenerationAndAFreshEvent() {
        EventHandle old = acquire();
        commitAndAwait(recordOnStream(old));
        release(old);

        EventHandle reused = acquire();
        assertEquals(old.slot(), reused.slot());
        assertNotEquals(old.generation(), reused.generation());
        // A fresh native event: the old event's completed record does not make the new one complete.
        assertFailure(ask(new Query(reused, client.getRef())), "never recorded");
        assertFailure(ask(new Query(old, client.getRef())), "released");
        release(reused);
    }

    @Test
    void releasingAnEventWhoseRecordIsStillPendingIsSafe() {
        EventHandle h = acquire();
        pool.tell(new Record(h, stream, client.getRef()));
        RecordEvent request = streamOwner.expectMessageClass(RecordEvent.class, BOUND);
        release(h);
        // The stream owner's reference keeps the native event alive for the record it encodes.
        long point = encodeRecord(request);
        client.expectMessageClass(Recorded.class, BOUND);
        commitAndAwait(point);
        assertFailure(ask(new Query(h, client.getRef())), "released");
        assertFailure(ask(new WaitForEvent(h, stream, client.getRef())), "released");
    }

    @Test
    void aFullPoolRefusesAcquireNamingTheLimitAndItsConfigKey() {
        ActorRef<EventPoolProtocol.Command> small = testKit.spawn(EventPoolActor.create(device, 2, ASK_TIMEOUT));
        try {
            EventHandle a = acquireFrom(small);
            acquireFrom(small);
            EventFailed refused = (EventFailed) ask(small, new Acquire(client.getRef()));
            assertNull(refused.handle());
            assertTrue(refused.reason().contains("mps-actors.event-pool.max-events"), refused.reason());
            assertTrue(refused.reason().contains("2"), refused.reason());
            assertEquals(new Released(a), ask(small, new Release(a, client.getRef())));
            acquireFrom(small);
        } finally {
            testKit.stop(small, BOUND);
        }
    }

    @Test
    void waitingForAnEventBecomesAWaitForItsLatestRecordedPoint() {
        TestProbe<StreamProtocol.Command> otherOwner = testKit.createTestProbe(StreamProtocol.Command.class);
        StreamHandle other = new StreamHandle(1, otherOwner.getRef());
        EventHandle h = acquire();
        long point = recordOnStream(h);

        pool.tell(new WaitForEvent(h, other, client.getRef()));
        StreamProtocol.WaitFor wait = otherOwner.expectMessageClass(StreamProtocol.WaitFor.class, BOUND);
        assertEquals(stream, wait.other());
        assertEquals(point, wait.point());
        wait.replyTo().tell(new StreamProtocol.WaitEncoded(other, stream, point));
        assertEquals(new EventPoolProtocol.WaitEncoded(h, other), client.expectMessageClass(EventReply.class, BOUND));

        pool.tell(new WaitForEvent(h, other, client.getRef()));
        wait = otherOwner.expectMessageClass(StreamProtocol.WaitFor.class, BOUND);
        wait.replyTo().tell(new StreamProtocol.WaitFailed(other, stream, point,
                "point " + point + " is not committed"));
        assertFailure(client.expectMessageClass(EventReply.class, BOUND), "is not committed");
        commitAndAwait(point);
        release(h);
    }

    @Test
    void aStreamOwnerThatRefusesOrNeverAnswersARecordIsReportedAsAFailure() {
        ActorRef<EventPoolProtocol.Command> impatient =
                testKit.spawn(EventPoolActor.create(device, 4, Duration.ofMillis(200)));
        try {
            EventHandle h = acquireFrom(impatient);
            impatient.tell(new Record(h, stream, client.getRef()));
            RecordEvent refused = streamOwner.expectMessageClass(RecordEvent.class, BOUND);
            refused.event().close();
            refused.replyTo().tell(new StreamProtocol.EventRecordFailed(h, stream, "stream is closed"));
            assertFailure(client.expectMessageClass(EventReply.class, BOUND), "stream is closed");

            impatient.tell(new Record(h, stream, client.getRef()));
            RecordEvent ignored = streamOwner.expectMessageClass(RecordEvent.class, BOUND);
            assertFailure(client.expectMessageClass(EventReply.class, BOUND), "did not confirm");
            // Playing the owner, which closes the reference it was given.
            ignored.event().close();
            assertFailure(ask(impatient, new Query(h, client.getRef())), "never recorded");
        } finally {
            testKit.stop(impatient, BOUND);
        }
    }

    @Test
    void noNativeEventOutlivesItsReleaseOrThePool() {
        long baseline = device.liveObjects().events();
        List<EventHandle> handles = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            handles.add(acquire());
        }
        long last = 0;
        for (int i = 0; i < handles.size(); i += 2) {
            last = recordOnStream(handles.get(i));
        }
        assertEquals(baseline + 16, device.liveObjects().events());
        commitAndAwait(last);
        for (EventHandle h : handles) {
            release(h);
        }
        awaitTrue("released events are freed", () -> device.liveObjects().events() == baseline);
        assertEquals(0, stats().inUse());

        // Events still held when the pool stops are closed by it (checked in stopPool).
        for (int i = 0; i < 5; i++) {
            acquire();
        }
        assertEquals(baseline + 5, device.liveObjects().events());
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private EventHandle acquire() {
        return acquireFrom(pool);
    }

    private EventHandle acquireFrom(ActorRef<EventPoolProtocol.Command> target) {
        EventReply reply = ask(target, new Acquire(client.getRef()));
        assertTrue(reply instanceof Acquired, reply::toString);
        return ((Acquired) reply).handle();
    }

    private void release(EventHandle h) {
        assertEquals(new Released(h), ask(new Release(h, client.getRef())));
    }

    private PoolStats stats() {
        TestProbe<PoolStats> probe = testKit.createTestProbe(PoolStats.class);
        pool.tell(new GetPoolStats(probe.getRef()));
        return probe.expectMessageClass(PoolStats.class, BOUND);
    }

    private EventReply ask(EventPoolProtocol.Command request) {
        return ask(pool, request);
    }

    private EventReply ask(ActorRef<EventPoolProtocol.Command> target, EventPoolProtocol.Command request) {
        target.tell(request);
        return client.expectMessageClass(EventReply.class, BOUND);
    }

    /** Records through the probe owner; returns the point the record completes with (not yet committed). */
    private long recordOnStream(EventHandle h) {
        pool.tell(new Record(h, stream, client.getRef()));
        long point = encodeRecord(streamOwner.expectMessageClass(RecordEvent.class, BOUND));
        assertEquals(new Recorded(h, stream, point), client.expectMessageClass(Recorded.class, BOUND));
        return point;
    }

    /** What a stream owner does with RecordEvent: encode, close its reference, confirm the point. */
    private long encodeRecord(RecordEvent request) {
        try (var token = request.event()) {
            nativeStream.encodeEventRecord(token);
        }
        long point = nativeStream.committedPoint() + 1;
        request.replyTo().tell(new StreamProtocol.EventRecordEncoded(request.handle(), stream, point));
        return point;
    }

    private static void commitAndAwait(long point) {
        while (nativeStream.committedPoint() < point) {
            nativeStream.commit();
        }
        awaitTrue("point " + point + " completes", () -> nativeStream.completedPoint() >= point);
    }

    private static void assertFailure(EventReply reply, String mention) {
        assertTrue(reply instanceof EventFailed, () -> "expected EventFailed, got " + reply);
        String reason = ((EventFailed) reply).reason();
        assertTrue(reason.contains(mention), () -> "reason should mention '" + mention + "': " + reason);
    }

    private static void awaitTrue(String what, BooleanSupplier condition) {
        Eventually.awaitTrue(what, BOUND, condition, () -> "live: " + device.liveObjects());
    }
}
