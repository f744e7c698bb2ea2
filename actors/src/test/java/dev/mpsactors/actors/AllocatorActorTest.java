package dev.mpsactors.actors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.mpsactors.nativemps.DeviceOptions;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.protocol.AllocatorProtocol;
import dev.mpsactors.protocol.AllocatorProtocol.Allocate;
import dev.mpsactors.protocol.AllocatorProtocol.Allocated;
import dev.mpsactors.protocol.AllocatorProtocol.AllocationFailed;
import dev.mpsactors.protocol.AllocatorProtocol.AllocationReply;
import dev.mpsactors.protocol.AllocatorProtocol.AllocatorStats;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.AllocatorProtocol.Free;
import dev.mpsactors.protocol.AllocatorProtocol.FreeAfter;
import dev.mpsactors.protocol.AllocatorProtocol.GetAllocatorStats;
import dev.mpsactors.protocol.AllocatorProtocol.InjectCrash;
import dev.mpsactors.protocol.AllocatorProtocol.Trim;
import dev.mpsactors.protocol.AllocatorProtocol.Trimmed;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.protocol.StreamProtocol.NotifyWhenComplete;
import dev.mpsactors.protocol.StreamProtocol.PointCompleted;
import dev.mpsactors.runtime.RuntimeSettings.AllocatorSettings;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;
import org.apache.pekko.actor.testkit.typed.javadsl.ActorTestKit;
import org.apache.pekko.actor.testkit.typed.javadsl.TestProbe;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.SupervisorStrategy;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The allocator owns the pool: freed memory is reused by its size class, memory freed after a timeline
 * point is reused only once the stream's owner (here a probe playing that part) reports the point, and a
 * request over the limit waits as a message, never as a blocked thread (hazard 5 of docs/audit.md was a blocking wait
 * under the pool's lock). Every test gives back what it took: the device's live buffers return to their
 * baseline.
 */
class AllocatorActorTest {
    private static final Duration ASK_TIMEOUT = Duration.ofSeconds(5);
    private static final Duration BOUND = Duration.ofSeconds(10);
    private static final long KIB = 1024;
    private static final long MIB = 1024 * KIB;
    private static final String LIMIT_KEY = "mps-actors.allocator.memory-limit";

    private static ActorTestKit testKit;
    private static NativeDevice device;
    private static long baselineBuffers;

    private final List<ActorRef<AllocatorProtocol.Command>> spawned = new ArrayList<>();
    /** Leases a test still holds; closed after the test if it fails before freeing them. */
    private final List<BufferLease> held = new ArrayList<>();
    private TestProbe<AllocationReply> client;
    private TestProbe<AllocatorStats> statsProbe;
    private TestProbe<StreamProtocol.Command> streamOwner;
    private StreamHandle stream;

    @BeforeAll
    static void start() {
        testKit = ActorTestKit.create();
        device = NativeDevice.open(DeviceOptions.cpu());
        baselineBuffers = device.liveObjects().buffers();
    }

    @AfterAll
    static void stop() {
        try {
            testKit.shutdownTestKit();
            awaitTrue("every native buffer released", () -> device.liveObjects().buffers() == baselineBuffers);
        } finally {
            // Throws BUSY if anything leaked: the last assertion of the class.
            device.close();
        }
    }

    @BeforeEach
    void probes() {
        client = testKit.createTestProbe(AllocationReply.class);
        statsProbe = testKit.createTestProbe(AllocatorStats.class);
        streamOwner = testKit.createTestProbe(StreamProtocol.Command.class);
        stream = new StreamHandle(0, streamOwner.getRef());
    }

    @AfterEach
    void stopAllocators() {
        for (ActorRef<AllocatorProtocol.Command> ref : spawned) {
            testKit.stop(ref, BOUND);
        }
        // Only leases the allocator never took back: it closed the rest (cached, pending) when it stopped.
        held.forEach(l -> l.buffer().close());
        awaitTrue("the allocator's buffers are freed when it stops",
                () -> device.liveObjects().buffers() == baselineBuffers);
    }

    // ---- reuse and accounting -----------------------------------------------------------------------

    @Test
    void aFreedBufferIsReusedByTheNextRequestOfItsSizeClass() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(64 * MIB, 0.8, Duration.ofSeconds(5), 100);
        BufferLease first = allocate(allocator, 1000);
        assertEquals(1024, first.classBytes());
        assertEquals(1000, first.requestedBytes());
        free(allocator, first);

        BufferLease second = allocate(allocator, 900); // another size, the same class
        assertSame(first.buffer(), second.buffer(), "the cached buffer of class 1024 is handed out again");
        assertEquals(900, second.requestedBytes());
        assertFalse(second.buffer().isClosed());
        AllocatorStats s = stats(allocator);
        assertEquals(1, s.cacheHits());
        assertEquals(1, s.deviceAllocations());
        assertEquals(2, s.allocations());

        BufferLease other = allocate(allocator, 1025); // class 1280: no cached buffer of it
        assertNotSame(second.buffer(), other.buffer());
        assertEquals(2, stats(allocator).deviceAllocations());
        free(allocator, second);
        free(allocator, other);
        trim(allocator);
    }

    @Test
    void statsAccountForEveryByteThroughASequenceOfAllocationsAndFrees() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(64 * MIB, 0.8, Duration.ofSeconds(5), 100);
        BufferLease a = allocate(allocator, 1000); // class 1024
        BufferLease b = allocate(allocator, 3000); // class 3072
        AllocatorStats s = stats(allocator);
        assertEquals(4096, s.allocatedBytes());
        assertEquals(4096, s.reservedBytes());
        assertEquals(0, s.cachedBytes());
        assertEquals(2, s.liveLeases());
        assertEquals(64 * MIB, s.limitBytes());

        free(allocator, a);
        s = stats(allocator);
        assertEquals(3072, s.allocatedBytes());
        assertEquals(1024, s.cachedBytes());
        assertEquals(4096, s.reservedBytes(), "a cached buffer is still held from the device");
        assertEquals(1, s.liveLeases());

        BufferLease c = allocate(allocator, 600); // class 640, a new device buffer
        s = stats(allocator);
        assertEquals(3712, s.allocatedBytes());
        assertEquals(4736, s.reservedBytes());
        assertEquals(4096, s.peakAllocatedBytes());
        assertEquals(4736, s.peakReservedBytes());
        assertEquals(3, s.deviceAllocations());
        assertEquals(0, s.cacheHits());

        free(allocator, b);
        free(allocator, c);
        s = stats(allocator);
        assertEquals(0, s.allocatedBytes());
        assertEquals(4736, s.cachedBytes());
        assertEquals(4736, s.reservedBytes());

        Trimmed trimmed = trim(allocator);
        assertEquals(4736, trimmed.releasedBytes());
        assertZero(trimmed.stats());
        assertEquals(4096, trimmed.stats().peakAllocatedBytes(), "peaks outlive the trim");
        assertEquals(4736, trimmed.stats().peakReservedBytes());
        assertEquals(3, trimmed.stats().allocations());
        assertEquals(0, trimmed.stats().failures());
    }

    @Test
    void aFreeOfAnUnknownLeaseIsIgnoredAndNeverCachesABufferTwice() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(64 * MIB, 0.8, Duration.ofSeconds(5), 100);
        BufferLease lease = allocate(allocator, 2048);
        free(allocator, lease);
        allocator.tell(new Free(lease)); // freed twice
        allocator.tell(new FreeAfter(lease, stream, 1)); // and once more after a point
        AllocatorStats s = stats(allocator);
        assertEquals(2048, s.cachedBytes(), "cached once");
        assertEquals(0, s.pendingFreeBytes());
        streamOwner.expectNoMessage(Duration.ofMillis(50));

        BufferLease x = allocate(allocator, 2048);
        BufferLease y = allocate(allocator, 2048);
        assertNotSame(x.buffer(), y.buffer(), "two clients never share one buffer");
        assertFalse(lease.buffer().isClosed());
        free(allocator, x);
        free(allocator, y);
        trim(allocator);
    }

    // ---- free after a timeline point ----------------------------------------------------------------

    @Test
    void aBufferFreedAfterAPointIsReusedOnlyOnceTheStreamReportsThePoint() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(64 * MIB, 0.8, Duration.ofSeconds(5), 100);
        BufferLease lease = allocate(allocator, 4096);
        release(lease);
        allocator.tell(new FreeAfter(lease, stream, 7));
        NotifyWhenComplete ask = streamOwner.expectMessageClass(NotifyWhenComplete.class, BOUND);
        assertEquals(7, ask.point());

        AllocatorStats s = stats(allocator);
        assertEquals(4096, s.pendingFreeBytes());
        assertEquals(0, s.cachedBytes());
        assertEquals(4096, s.reservedBytes());

        // Meanwhile the same class comes from the device: the pending buffer may still be in use there.
        BufferLease meanwhile = allocate(allocator, 4096);
        assertNotSame(lease.buffer(), meanwhile.buffer());
        assertEquals(2, stats(allocator).deviceAllocations());

        ask.replyTo().tell(new PointCompleted(stream, 7, null));
        awaitStats(allocator, "the completed point's buffer is cached", st -> st.cachedBytes() == 4096);
        s = stats(allocator);
        assertEquals(0, s.pendingFreeBytes());

        BufferLease reused = allocate(allocator, 4000);
        assertSame(lease.buffer(), reused.buffer(), "reused after its point completed");
        assertEquals(1, stats(allocator).cacheHits());
        free(allocator, meanwhile);
        free(allocator, reused);
        trim(allocator);
    }

    @Test
    void aBufferWhosePointFailedIsClosedNotCached() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(64 * MIB, 0.8, Duration.ofSeconds(5), 100);
        long before = device.liveObjects().buffers();
        BufferLease lease = allocate(allocator, 8192);
        release(lease);
        allocator.tell(new FreeAfter(lease, stream, 3));
        NotifyWhenComplete ask = streamOwner.expectMessageClass(NotifyWhenComplete.class, BOUND);
        ask.replyTo().tell(new PointCompleted(stream, 3, "stream-0 restarted before point 3 completed"));

        awaitStats(allocator, "the pending buffer is no longer reserved", st -> st.pendingFreeBytes() == 0);
        AllocatorStats s = stats(allocator);
        assertEquals(0, s.cachedBytes(), "not cached: work using it may still be pending");
        assertEquals(0, s.reservedBytes());
        assertTrue(lease.buffer().isClosed());
        awaitTrue("the native buffer is freed", () -> device.liveObjects().buffers() == before);

        BufferLease next = allocate(allocator, 8192);
        assertNotSame(lease.buffer(), next.buffer());
        assertEquals(0, stats(allocator).cacheHits());
        free(allocator, next);
        trim(allocator);
    }

    @Test
    void aBufferWhosePointIsNeverReportedIsClosedWhenTheAskTimesOut() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(
                AllocatorActor.create(device, settings(64 * MIB, 0.8, Duration.ofSeconds(5), 100), false,
                        Duration.ofMillis(200)));
        BufferLease lease = allocate(allocator, 8192);
        release(lease);
        allocator.tell(new FreeAfter(lease, stream, 9));
        streamOwner.expectMessageClass(NotifyWhenComplete.class, BOUND); // and never answered

        awaitStats(allocator, "the unconfirmed buffer is no longer reserved", st -> st.pendingFreeBytes() == 0);
        AllocatorStats s = stats(allocator);
        assertEquals(0, s.cachedBytes());
        assertEquals(0, s.reservedBytes());
        assertTrue(lease.buffer().isClosed());
    }

    // ---- the limit ----------------------------------------------------------------------------------

    @Test
    void aRequestBeyondTheFreeMemoryWaitsAndIsServedWhenALeaseIsFreed() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(1 * MIB, 0.8, Duration.ofSeconds(30), 100);
        BufferLease big = allocate(allocator, 768 * KIB);

        allocator.tell(new Allocate(512 * KIB, client.getRef()));
        assertEquals(1, stats(allocator).waitingRequests(), "768 KiB + 512 KiB is over the 1 MiB limit");
        client.expectNoMessage(Duration.ofMillis(100));

        free(allocator, big);
        BufferLease served = expectAllocated();
        assertEquals(512 * KIB, served.classBytes());
        AllocatorStats s = stats(allocator);
        assertEquals(0, s.waitingRequests());
        assertEquals(512 * KIB, s.allocatedBytes());
        assertEquals(512 * KIB, s.reservedBytes(), "the cached 768 KiB went back to make room");
        assertTrue(big.buffer().isClosed());
        free(allocator, served);
        trim(allocator);
    }

    @Test
    void waitingRequestsAreServedInArrivalOrder() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(1 * MIB, 1.0, Duration.ofSeconds(30), 100);
        BufferLease big = allocate(allocator, 1 * MIB);
        TestProbe<AllocationReply> firstClient = testKit.createTestProbe(AllocationReply.class);
        TestProbe<AllocationReply> secondClient = testKit.createTestProbe(AllocationReply.class);
        allocator.tell(new Allocate(768 * KIB, firstClient.getRef()));
        allocator.tell(new Allocate(1024, secondClient.getRef())); // would fit after the first, never before it
        assertEquals(2, stats(allocator).waitingRequests());

        free(allocator, big);
        BufferLease first = held(firstClient.expectMessageClass(Allocated.class, BOUND).lease());
        BufferLease second = held(secondClient.expectMessageClass(Allocated.class, BOUND).lease());
        assertEquals(768 * KIB, first.classBytes());
        assertEquals(1024, second.classBytes());
        free(allocator, first);
        free(allocator, second);
        trim(allocator);
    }

    @Test
    void aWaitingRequestTimesOutWithAReplySayingWhatItWaitedFor() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(1 * MIB, 0.8, Duration.ofMillis(200), 100);
        BufferLease big = allocate(allocator, 768 * KIB);

        allocator.tell(new Allocate(512 * KIB, client.getRef()));
        AllocationFailed failed = client.expectMessageClass(AllocationFailed.class, BOUND);
        assertEquals(512 * KIB, failed.bytes());
        assertMentions(failed.reason(), "waited", "for 524288 bytes", "786432 of 1048576 bytes in use",
                "allocated 786432", "pending-free 0", "mps-actors.allocator.wait-timeout");
        AllocatorStats s = stats(allocator);
        assertEquals(0, s.waitingRequests());
        assertEquals(1, s.failures());
        free(allocator, big);
        trim(allocator);
    }

    @Test
    void requestsBeyondMaxWaitingFailAtOnce() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(1 * MIB, 0.8, Duration.ofSeconds(30), 1);
        BufferLease big = allocate(allocator, 768 * KIB);
        TestProbe<AllocationReply> waiter = testKit.createTestProbe(AllocationReply.class);
        allocator.tell(new Allocate(512 * KIB, waiter.getRef()));

        allocator.tell(new Allocate(512 * KIB, client.getRef()));
        AllocationFailed failed = client.expectMessageClass(AllocationFailed.class, BOUND);
        assertMentions(failed.reason(), "1 requests already wait", "mps-actors.allocator.max-waiting");
        assertEquals(1, stats(allocator).waitingRequests());

        free(allocator, big);
        BufferLease served = held(waiter.expectMessageClass(Allocated.class, BOUND).lease());
        free(allocator, served);
        trim(allocator);
    }

    @Test
    void aRequestLargerThanTheLimitFailsAtOnceNamingTheLimitKey() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(1 * MIB, 0.8, Duration.ofSeconds(30), 100);
        allocator.tell(new Allocate(2 * MIB, client.getRef()));
        AllocationFailed failed = client.expectMessageClass(AllocationFailed.class, BOUND);
        assertEquals(2 * MIB, failed.bytes());
        assertMentions(failed.reason(), "2097152 bytes", "1048576 bytes", LIMIT_KEY);

        allocator.tell(new Allocate(0, client.getRef()));
        assertMentions(client.expectMessageClass(AllocationFailed.class, BOUND).reason(), "0 bytes", LIMIT_KEY);
        allocator.tell(new Allocate(-5, client.getRef()));
        client.expectMessageClass(AllocationFailed.class, BOUND);

        AllocatorStats s = stats(allocator);
        assertEquals(0, s.waitingRequests());
        assertEquals(3, s.failures());
        assertEquals(0, s.deviceAllocations());
    }

    @Test
    void aboveTheLowWatermarkCachedBuffersOfOtherClassesGoBackBeforeANewDeviceAllocation() {
        // Limit 1 MiB, low watermark 512 KiB.
        ActorRef<AllocatorProtocol.Command> allocator = spawn(1 * MIB, 0.5, Duration.ofSeconds(30), 100);
        BufferLease a = allocate(allocator, 256 * KIB);
        free(allocator, a);

        BufferLease small = allocate(allocator, 128 * KIB); // 256 + 128 KiB: below the low watermark
        AllocatorStats s = stats(allocator);
        assertEquals(256 * KIB, s.cachedBytes(), "below the low watermark the cache stays");
        assertFalse(a.buffer().isClosed());

        BufferLease large = allocate(allocator, 384 * KIB); // 256 + 128 + 384 KiB: above it
        s = stats(allocator);
        assertEquals(0, s.cachedBytes(), "the other class's cached buffer went back to the device");
        assertEquals(512 * KIB, s.reservedBytes());
        assertEquals(3, s.deviceAllocations());
        assertTrue(a.buffer().isClosed());
        free(allocator, small);
        free(allocator, large);
        trim(allocator);
    }

    @Test
    void trimReturnsEveryCachedBufferToTheDevice() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(64 * MIB, 0.8, Duration.ofSeconds(5), 100);
        List<BufferLease> leases = new ArrayList<>();
        for (long bytes : new long[] {100, 5000, 70_000, 70_000}) {
            leases.add(allocate(allocator, bytes));
        }
        assertEquals(baselineBuffers + 4, device.liveObjects().buffers());
        leases.forEach(l -> free(allocator, l));
        assertEquals(baselineBuffers + 4, device.liveObjects().buffers(), "freed buffers stay cached");

        Trimmed trimmed = trim(allocator);
        assertEquals(512 + 5120 + 2 * 81_920, trimmed.releasedBytes()); // 70 000 B -> 80 KiB class
        assertZero(trimmed.stats());
        awaitTrue("trimmed buffers are freed", () -> device.liveObjects().buffers() == baselineBuffers);
        assertEquals(0, trim(allocator).releasedBytes(), "nothing left to trim");
    }

    @Test
    void afterEveryLeaseIsFreedAndTheCacheTrimmedTheAllocatorIsBackToZero() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(4 * MIB, 0.8, Duration.ofSeconds(5), 100);
        List<BufferLease> leases = new ArrayList<>();
        for (int i = 1; i <= 40; i++) {
            leases.add(allocate(allocator, i * 3001L));
        }
        List<NotifyWhenComplete> asks = new ArrayList<>();
        for (int i = 0; i < leases.size(); i++) {
            BufferLease l = leases.get(i);
            if (i % 3 == 0) {
                release(l);
                allocator.tell(new FreeAfter(l, stream, i + 1));
                asks.add(streamOwner.expectMessageClass(NotifyWhenComplete.class, BOUND));
            } else {
                free(allocator, l);
            }
        }
        for (int i = 0; i < 20; i++) {
            free(allocator, allocate(allocator, i * 4099L + 1));
        }
        for (int i = 0; i < asks.size(); i++) {
            NotifyWhenComplete ask = asks.get(i);
            // Half of the points complete, half fail: both end with the buffer out of the pending set.
            ask.replyTo().tell(new PointCompleted(stream, ask.point(), i % 2 == 0 ? null : "failed"));
        }
        awaitStats(allocator, "every pending buffer settled", st -> st.pendingFreeBytes() == 0);

        Trimmed trimmed = trim(allocator);
        assertZero(trimmed.stats());
        assertEquals(60, trimmed.stats().allocations());
        awaitTrue("the device holds no buffer of the allocator",
                () -> device.liveObjects().buffers() == baselineBuffers);
    }

    // ---- faults -------------------------------------------------------------------------------------

    @Test
    void aCrashAnswersTheWaitingRequestsAndTheRestartedAllocatorKeepsServing() {
        Behavior<AllocatorProtocol.Command> supervised = Behaviors.supervise(
                AllocatorActor.create(device, settings(1 * MIB, 0.8, Duration.ofSeconds(30), 100), true, ASK_TIMEOUT))
                .onFailure(SupervisorStrategy.restart());
        ActorRef<AllocatorProtocol.Command> allocator = spawn(supervised);
        BufferLease big = allocate(allocator, 768 * KIB);
        BufferLease pending = allocate(allocator, 1000);
        release(pending);
        allocator.tell(new FreeAfter(pending, stream, 5));
        NotifyWhenComplete ask = streamOwner.expectMessageClass(NotifyWhenComplete.class, BOUND);
        allocator.tell(new Allocate(512 * KIB, client.getRef()));
        assertEquals(1, stats(allocator).waitingRequests());

        allocator.tell(new InjectCrash("test"));
        AllocationFailed failed = client.expectMessageClass(AllocationFailed.class, BOUND);
        assertEquals(512 * KIB, failed.bytes());
        assertMentions(failed.reason(), "allocator restarted");
        // The predecessor closed its pending-free buffer; a late report of its point must not revive it.
        ask.replyTo().tell(new PointCompleted(stream, 5, null));

        // The new incarnation starts with an empty pool and serves at once.
        BufferLease after = allocate(allocator, 512 * KIB);
        AllocatorStats s = stats(allocator);
        assertEquals(512 * KIB, s.allocatedBytes());
        assertEquals(1, s.liveLeases());
        assertEquals(0, s.cachedBytes());
        assertEquals(0, s.pendingFreeBytes());
        assertTrue(pending.buffer().isClosed());
        assertFalse(big.buffer().isClosed(), "a client's lease stays the client's across the restart");

        free(allocator, big); // the predecessor's lease: closed, not cached
        s = stats(allocator);
        assertEquals(0, s.cachedBytes());
        assertTrue(big.buffer().isClosed());
        free(allocator, after);
        assertZero(trim(allocator).stats());
    }

    @Test
    void anInjectedCrashIsIgnoredWhenFaultInjectionIsOff() {
        ActorRef<AllocatorProtocol.Command> allocator = spawn(64 * MIB, 0.8, Duration.ofSeconds(5), 100);
        BufferLease lease = allocate(allocator, 1000);
        allocator.tell(new InjectCrash("ignored"));
        assertEquals(1, stats(allocator).liveLeases());
        free(allocator, lease);
        assertEquals(1024, stats(allocator).cachedBytes());
        trim(allocator);
    }

    // ---- helpers ------------------------------------------------------------------------------------

    private static AllocatorSettings settings(long limit, double lowWatermarkRatio, Duration wait, int maxWaiting) {
        return new AllocatorSettings(limit, 0.5, lowWatermarkRatio, wait, maxWaiting);
    }

    private ActorRef<AllocatorProtocol.Command> spawn(long limit, double lowWatermarkRatio, Duration wait,
                                                      int maxWaiting) {
        return spawn(AllocatorActor.create(device, settings(limit, lowWatermarkRatio, wait, maxWaiting), false,
                ASK_TIMEOUT));
    }

    private ActorRef<AllocatorProtocol.Command> spawn(Behavior<AllocatorProtocol.Command> behavior) {
        ActorRef<AllocatorProtocol.Command> ref = testKit.spawn(behavior);
        spawned.add(ref);
        return ref;
    }

    private BufferLease allocate(ActorRef<AllocatorProtocol.Command> allocator, long bytes) {
        allocator.tell(new Allocate(bytes, client.getRef()));
        return expectAllocated();
    }

    private BufferLease expectAllocated() {
        AllocationReply reply = client.expectMessageClass(AllocationReply.class, BOUND);
        assertTrue(reply instanceof Allocated, () -> "expected Allocated, got " + reply);
        return held(((Allocated) reply).lease());
    }

    private BufferLease held(BufferLease lease) {
        held.add(lease);
        return lease;
    }

    /** The test no longer holds the lease: it was handed back to the allocator. */
    private void release(BufferLease lease) {
        held.remove(lease);
    }

    private void free(ActorRef<AllocatorProtocol.Command> allocator, BufferLease lease) {
        release(lease);
        allocator.tell(new Free(lease));
    }

    private AllocatorStats stats(ActorRef<AllocatorProtocol.Command> allocator) {
        allocator.tell(new GetAllocatorStats(statsProbe.getRef()));
        return statsProbe.expectMessageClass(AllocatorStats.class, BOUND);
    }

    private Trimmed trim(ActorRef<AllocatorProtocol.Command> allocator) {
        TestProbe<Trimmed> probe = testKit.createTestProbe(Trimmed.class);
        allocator.tell(new Trim(probe.getRef()));
        return probe.expectMessageClass(Trimmed.class, BOUND);
    }

    private void awaitStats(ActorRef<AllocatorProtocol.Command> allocator, String what,
                            Predicate<AllocatorStats> condition) {
        awaitTrue(what, () -> condition.test(stats(allocator)));
    }

    private static void assertZero(AllocatorStats s) {
        assertEquals(0, s.allocatedBytes(), () -> "allocated: " + s);
        assertEquals(0, s.reservedBytes(), () -> "reserved: " + s);
        assertEquals(0, s.cachedBytes(), () -> "cached: " + s);
        assertEquals(0, s.pendingFreeBytes(), () -> "pending-free: " + s);
        assertEquals(0, s.waitingRequests(), () -> "waiting: " + s);
        assertEquals(0, s.liveLeases(), () -> "leases: " + s);
    }

    private static void assertMentions(String reason, String... mentions) {
        for (String m : mentions) {
            assertTrue(reason.contains(m), () -> "reason should mention '" + m + "': " + reason);
        }
    }

    /** Polls with a bound: native frees and adapted replies arrive asynchronously. */
    private static void awaitTrue(String what, BooleanSupplier condition) {
        Eventually.awaitTrue(what, BOUND, condition, () -> "live: " + device.liveObjects());
    }
}
