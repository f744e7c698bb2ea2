package dev.mpsactors.actors;

import dev.mpsactors.nativemps.DeviceBuffer;
import dev.mpsactors.nativemps.NativeDevice;
import dev.mpsactors.nativemps.NativeException;
import dev.mpsactors.nativemps.NativeStatus;
import dev.mpsactors.protocol.AllocatorProtocol.Allocate;
import dev.mpsactors.protocol.AllocatorProtocol.Allocated;
import dev.mpsactors.protocol.AllocatorProtocol.AllocationFailed;
import dev.mpsactors.protocol.AllocatorProtocol.AllocatorStats;
import dev.mpsactors.protocol.AllocatorProtocol.BufferLease;
import dev.mpsactors.protocol.AllocatorProtocol.Command;
import dev.mpsactors.protocol.AllocatorProtocol.Free;
import dev.mpsactors.protocol.AllocatorProtocol.FreeAfter;
import dev.mpsactors.protocol.AllocatorProtocol.GetAllocatorStats;
import dev.mpsactors.protocol.AllocatorProtocol.InjectCrash;
import dev.mpsactors.protocol.AllocatorProtocol.Internal;
import dev.mpsactors.protocol.AllocatorProtocol.Trim;
import dev.mpsactors.protocol.AllocatorProtocol.Trimmed;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol.NotifyWhenComplete;
import dev.mpsactors.protocol.StreamProtocol.PointCompleted;
import dev.mpsactors.runtime.RuntimeSettings.AllocatorSettings;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.PostStop;
import org.apache.pekko.actor.typed.PreRestart;
import org.apache.pekko.actor.typed.javadsl.AbstractBehavior;
import org.apache.pekko.actor.typed.javadsl.ActorContext;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.actor.typed.javadsl.Receive;
import org.apache.pekko.actor.typed.javadsl.TimerScheduler;

/**
 * The single owner of the device's memory pool. Duties:
 * <ul>
 *   <li>round every request up to its {@link SizeClasses size class} and reuse a cached free buffer of that
 *       class before asking the device for a new one;</li>
 *   <li>keep the pool under the memory limit (high watermark): a request that does not fit waits as a
 *       queued message, first come first served, and is answered when memory comes back or when its
 *       {@code wait-timeout} runs out. Nothing here blocks or sleeps: hazard 5 of docs/audit.md was
 *       {@code MPSHeapAllocatorImpl::waitForEvents()} blocking on an event while holding the pool's mutex;</li>
 *   <li>above the low watermark, return cached buffers of other classes to the device before making a new
 *       one (the cache must not crowd out the classes actually asked for, as PyTorch's MPS allocator
 *       garbage-collects its cache above its low watermark);</li>
 *   <li>hold a buffer freed "after point P of stream S" as pending-free until S's owner reports that P
 *       executed, and only then cache it; when that report fails or never comes, close the buffer instead
 *       (the native layer frees it after its pending work), so memory that may still be in use is never
 *       handed to another client.</li>
 * </ul>
 *
 * <p>Every byte count here is size-class bytes. {@code reserved = allocated + cached + pendingFree} is what
 * the pool holds from the device and what the limit applies to.
 *
 * <p>Restarts: the successor starts with an empty pool. Leases the predecessor handed out stay their
 * holders' (their buffers are not closed); the successor does not count them against its limit, and when one
 * comes back it closes its buffer rather than caching it. Lease ids are drawn from one counter that outlives
 * restarts, so the successor can tell a predecessor's lease from one freed twice.
 */
public final class AllocatorActor extends AbstractBehavior<Command> {
    static final String MEMORY_LIMIT_KEY = "mps-actors.allocator.memory-limit";
    static final String MEMORY_FRACTION_KEY = "mps-actors.allocator.memory-fraction";
    static final String WAIT_TIMEOUT_KEY = "mps-actors.allocator.wait-timeout";
    static final String MAX_WAITING_KEY = "mps-actors.allocator.max-waiting";

    /** What outlives a restart: the lease and waiter ids already handed out. Only the current incarnation touches it. */
    private static final class Lineage {
        long lastLeaseId;
        long lastWaiterId;
    }

    /** A buffer freed after a timeline point, reserved until the point is reported. */
    private record PendingFree(DeviceBuffer buffer, StreamHandle stream, long point) {}

    /** A request queued under the limit; {@code sinceNanos} is System.nanoTime() when it was queued. */
    private record Waiter(long id, Allocate request, long classBytes, long sinceNanos) {}

    /** The stream owner's answer (or the ask's failure) about the point a pending-free lease waits for. */
    private record PointReported(long leaseId, PointCompleted reply, Throwable failure) implements Internal {}

    /** A waiting request's {@code wait-timeout} ran out; also the timer's key. */
    private record WaitExpired(long waiterId) implements Internal {}

    private final NativeDevice device;
    private final TimerScheduler<Command> timers;
    private final Lineage lineage;
    /** Leases with an id up to this one were handed out by a predecessor. */
    private final long leaseIdAtStart;
    private final FaultInjector faults;
    private final FaultInjector.Owner draws;
    private final Duration askTimeout;
    private final Consumer<List<DeviceBuffer>> heldAtStop;
    /** High watermark, bytes: reserved never goes above it. */
    private final long limitBytes;
    /** Low watermark, bytes: above it, cached buffers of other classes go back before a new device allocation. */
    private final long lowWatermarkBytes;
    private final Duration waitTimeout;
    private final int maxWaiting;
    /** Where the limit comes from, for failure messages: the key to change. */
    private final String limitSource;

    // Every field below is owned by this actor alone (read and written only by its message handlers).
    /** Live leases by id: the buffer each one holds, so a Free is checked against what was handed out. */
    private final Map<Long, DeviceBuffer> leases = new HashMap<>();
    /** Free, reusable buffers by class bytes. Sorted so the garbage collection can start at the largest. */
    private final TreeMap<Long, ArrayDeque<DeviceBuffer>> cache = new TreeMap<>();
    /** Freed-after-point buffers by lease id. */
    private final Map<Long, PendingFree> pendingFree = new HashMap<>();
    /** Requests over the limit by waiter id, in arrival order (FIFO). */
    private final LinkedHashMap<Long, Waiter> waiting = new LinkedHashMap<>();
    private long allocatedBytes;
    private long cachedBytes;
    private long pendingFreeBytes;
    private long peakAllocatedBytes;
    private long peakReservedBytes;
    private long allocations;
    private long cacheHits;
    private long deviceAllocations;
    private long failures;

    /** With InjectCrash honoured when {@code faultInjection}, and no injected allocation failures. */
    public static Behavior<Command> create(NativeDevice device, AllocatorSettings settings, boolean faultInjection,
                                           Duration askTimeout) {
        return create(device, settings, faultInjection
                ? FaultInjector.crashesOnly()
                : FaultInjector.off(), askTimeout);
    }

    /** Leases still held when the runtime stops are closed at once (an allocator on its own). */
    public static Behavior<Command> create(NativeDevice device, AllocatorSettings settings, FaultInjector faults,
                                           Duration askTimeout) {
        return create(device, settings, faults, askTimeout, buffers -> buffers.forEach(DeviceBuffer::close));
    }

    /**
     * @param heldAtStop receives the buffers of leases still held when the runtime stops, and closes them once
     *                   their holders have stopped too (DeviceRuntime closes them after every child stopped, so
     *                   a model actor preparing a batch never finds its memory closed under it)
     */
    public static Behavior<Command> create(NativeDevice device, AllocatorSettings settings, FaultInjector faults,
                                           Duration askTimeout, Consumer<List<DeviceBuffer>> heldAtStop) {
        Objects.requireNonNull(device, "device");
        Objects.requireNonNull(heldAtStop, "heldAtStop");
        Objects.requireNonNull(settings, "settings");
        Objects.requireNonNull(askTimeout, "askTimeout");
        long limit = settings.limitFor(device.info().memoryBytes());
        if (limit <= 0) {
            throw new IllegalArgumentException(MEMORY_LIMIT_KEY + " gives a limit of " + limit
                    + " bytes for a device of " + device.info().memoryBytes() + " bytes; it must be > 0");
        }
        Lineage lineage = new Lineage();
        return Behaviors.setup(ctx -> Behaviors.withTimers(timers ->
                new AllocatorActor(ctx, timers, device, settings, limit, faults, askTimeout, lineage, heldAtStop)));
    }

    private AllocatorActor(ActorContext<Command> ctx, TimerScheduler<Command> timers, NativeDevice device,
                           AllocatorSettings settings, long limitBytes, FaultInjector faults, Duration askTimeout,
                           Lineage lineage, Consumer<List<DeviceBuffer>> heldAtStop) {
        super(ctx);
        this.heldAtStop = heldAtStop;
        this.device = device;
        this.timers = timers;
        this.lineage = lineage;
        this.leaseIdAtStart = lineage.lastLeaseId;
        this.faults = faults;
        this.draws = faults.owner("allocator#" + lineage.lastLeaseId);
        this.askTimeout = askTimeout;
        this.limitBytes = limitBytes;
        this.lowWatermarkBytes = (long) (settings.lowWatermarkRatio() * limitBytes);
        this.waitTimeout = settings.waitTimeout();
        this.maxWaiting = settings.maxWaiting();
        this.limitSource = settings.memoryLimitBytes() > 0 ? MEMORY_LIMIT_KEY
                : MEMORY_LIMIT_KEY + " = 0, so " + MEMORY_FRACTION_KEY + " = " + settings.memoryFraction()
                        + " of the device's " + device.info().memoryBytes() + " bytes";
    }

    @Override
    public Receive<Command> createReceive() {
        return newReceiveBuilder()
                .onMessage(Allocate.class, this::onAllocate)
                .onMessage(Free.class, this::onFree)
                .onMessage(FreeAfter.class, this::onFreeAfter)
                .onMessage(PointReported.class, this::onPointReported)
                .onMessage(WaitExpired.class, this::onWaitExpired)
                .onMessage(Trim.class, this::onTrim)
                .onMessage(GetAllocatorStats.class, this::onGetStats)
                .onMessage(InjectCrash.class, this::onInjectCrash)
                .onSignal(PreRestart.class, s -> releaseAll("the allocator restarted"))
                .onSignal(PostStop.class, s -> {
                    releaseAll("the allocator stopped");
                    return closeLiveLeases();
                })
                .build();
    }

    // ---- allocate -----------------------------------------------------------------------------------

    private Behavior<Command> onAllocate(Allocate m) {
        if (draws.failAllocation()) {
            fail(m, "injected: the device is out of memory for " + m.bytes()
                    + " bytes (mps-actors.fault-injection.allocation-failure-rate)");
            return this;
        }
        long classBytes;
        try {
            classBytes = SizeClasses.classBytes(m.bytes());
        } catch (IllegalArgumentException e) {
            fail(m, "cannot allocate " + m.bytes() + " bytes: " + e.getMessage() + " (the memory limit is "
                    + limitBytes + " bytes, " + limitSource + ")");
            return this;
        }
        if (classBytes > limitBytes) {
            // Waiting could never help: even an empty pool cannot hold it.
            fail(m, "cannot allocate " + m.bytes() + " bytes (size class " + classBytes
                    + " bytes): more than the allocator's memory limit of " + limitBytes + " bytes ("
                    + limitSource + "); raise the limit or split the buffer");
            return this;
        }
        if (classBytes > device.info().maxBufferBytes()) {
            fail(m, "cannot allocate " + m.bytes() + " bytes (size class " + classBytes + " bytes): more than the "
                    + device.info().backend() + " device's largest buffer of " + device.info().maxBufferBytes()
                    + " bytes");
            return this;
        }
        // First come, first served: a newcomer never overtakes a waiting request, so a stream of small
        // requests cannot starve a large one.
        if (!waiting.isEmpty() || !tryServe(m, classBytes)) {
            enqueue(m, classBytes);
        }
        return this;
    }

    /**
     * Answers {@code m} now if memory allows: Allocated, or AllocationFailed when the device refuses.
     * Returns false, answering nothing, when it must wait for memory to come back.
     */
    private boolean tryServe(Allocate m, long classBytes) {
        ArrayDeque<DeviceBuffer> sameClass = cache.get(classBytes);
        if (sameClass != null) {
            DeviceBuffer buffer = sameClass.pop();
            if (sameClass.isEmpty()) {
                cache.remove(classBytes);
            }
            cachedBytes -= classBytes;
            cacheHits++;
            lease(m, buffer, classBytes);
            return true;
        }
        // No cached buffer of this class: the cached ones are all of other classes.
        releaseCachedUntil(lowWatermarkBytes - classBytes);
        if (reservedBytes() + classBytes > limitBytes) {
            return false;
        }
        DeviceBuffer buffer;
        try {
            buffer = allocateOnDevice(classBytes);
        } catch (RuntimeException e) {
            fail(m, "the " + device.info().backend() + " device could not allocate " + m.bytes() + " bytes (size class "
                    + classBytes + " bytes) with " + reservedBytes() + " of " + limitBytes + " bytes in use: "
                    + e.getMessage());
            return true;
        }
        deviceAllocations++;
        lease(m, buffer, classBytes);
        return true;
    }

    /** A new device buffer; on OUT_OF_MEMORY the whole cache goes back and the device is asked once more. */
    private DeviceBuffer allocateOnDevice(long classBytes) {
        try {
            return device.allocate(classBytes);
        } catch (NativeException e) {
            if (e.status() != NativeStatus.OUT_OF_MEMORY) {
                throw e;
            }
            // The device (or other processes) hold less than our limit assumed; our idle cache is the only
            // memory we can give back without waiting.
            long released = releaseCachedUntil(-1);
            getContext().getLog().warn("device out of memory for {} bytes; returned {} cached bytes and retrying once",
                    classBytes, released);
            return device.allocate(classBytes);
        }
    }

    private void lease(Allocate m, DeviceBuffer buffer, long classBytes) {
        long id = ++lineage.lastLeaseId;
        leases.put(id, buffer);
        allocatedBytes += classBytes;
        allocations++;
        peakAllocatedBytes = Math.max(peakAllocatedBytes, allocatedBytes);
        peakReservedBytes = Math.max(peakReservedBytes, reservedBytes());
        m.replyTo().tell(new Allocated(new BufferLease(id, buffer, m.bytes())));
    }

    private void fail(Allocate m, String reason) {
        failures++;
        m.replyTo().tell(new AllocationFailed(m.bytes(), reason));
    }

    // ---- waiting under the limit --------------------------------------------------------------------

    private void enqueue(Allocate m, long classBytes) {
        if (waitTimeout.isZero()) {
            fail(m, "cannot allocate " + m.bytes() + " bytes (size class " + classBytes + " bytes) now: "
                    + inUse() + ", and requests may not wait (" + WAIT_TIMEOUT_KEY + " = 0)");
            return;
        }
        if (waiting.size() >= maxWaiting) {
            fail(m, "cannot allocate " + m.bytes() + " bytes (size class " + classBytes + " bytes) now: " + inUse()
                    + ", and " + waiting.size() + " requests already wait, the most allowed (" + MAX_WAITING_KEY + ")");
            return;
        }
        long id = ++lineage.lastWaiterId;
        waiting.put(id, new Waiter(id, m, classBytes, System.nanoTime()));
        timers.startSingleTimer(new WaitExpired(id), new WaitExpired(id), waitTimeout);
    }

    /** Memory came back: serves waiting requests in arrival order until the head must go on waiting. */
    private void serveWaiting() {
        Iterator<Waiter> it = waiting.values().iterator();
        while (it.hasNext()) {
            Waiter head = it.next();
            if (!tryServe(head.request(), head.classBytes())) {
                return;
            }
            it.remove();
            timers.cancel(new WaitExpired(head.id()));
        }
    }

    private Behavior<Command> onWaitExpired(WaitExpired m) {
        Waiter w = waiting.remove(m.waiterId());
        if (w == null) {
            return this; // served just before its timer fired
        }
        long waitedMillis = (System.nanoTime() - w.sinceNanos()) / 1_000_000;
        fail(w.request(), "waited " + waitedMillis + " ms for " + w.request().bytes() + " bytes (size class "
                + w.classBytes() + " bytes) with " + inUse() + "; no memory came back within " + WAIT_TIMEOUT_KEY
                + " (" + waitTimeout.toMillis() + " ms)");
        // The request behind it may be smaller and fit now.
        serveWaiting();
        return this;
    }

    // ---- free ---------------------------------------------------------------------------------------

    private Behavior<Command> onFree(Free m) {
        DeviceBuffer buffer = takeLease(m.lease(), "Free");
        if (buffer != null) {
            // No pending device work uses it (the client says so): reusable at once.
            cacheBuffer(buffer);
            serveWaiting();
        }
        return this;
    }

    private Behavior<Command> onFreeAfter(FreeAfter m) {
        DeviceBuffer buffer = takeLease(m.lease(), "FreeAfter");
        if (buffer == null) {
            return this;
        }
        long leaseId = m.lease().id();
        StreamHandle stream = m.stream();
        if (stream == null) {
            // No point to wait for, so no moment when reuse is known to be safe: the native layer decides.
            getContext().getLog().warn("FreeAfter of lease {} names no stream; closing its buffer", leaseId);
            buffer.close();
            serveWaiting();
            return this;
        }
        pendingFree.put(leaseId, new PendingFree(buffer, stream, m.point()));
        pendingFreeBytes += buffer.size();
        Ask.ask(getContext(), PointCompleted.class, stream.owner(), askTimeout,
                replyTo -> new NotifyWhenComplete(m.point(), replyTo),
                (reply, failure) -> new PointReported(leaseId, reply, failure));
        return this;
    }

    private Behavior<Command> onPointReported(PointReported m) {
        PendingFree pending = pendingFree.remove(m.leaseId());
        if (pending == null) {
            return this; // asked by a predecessor, which closed the buffer when it stopped
        }
        pendingFreeBytes -= pending.buffer().size();
        PointCompleted reply = m.reply();
        if (reply != null && reply.succeeded() && reply.point() == pending.point()) {
            cacheBuffer(pending.buffer());
        } else {
            // The point failed, or its owner could not confirm it: work using the buffer may still be queued
            // or running. Closing is safe (the native layer frees it after that work); reusing is not.
            getContext().getLog().info("closing lease {}'s buffer instead of reusing it: {} point {} {}", m.leaseId(),
                    pending.stream(), pending.point(), describe(m));
            pending.buffer().close();
        }
        serveWaiting();
        return this;
    }

    /**
     * The buffer of a live lease, which stops being one; null for a lease this incarnation did not hand out
     * (a predecessor's lease is closed, anything else only logged: a second free must never cache a buffer
     * twice, and so hand it to two clients).
     */
    private DeviceBuffer takeLease(BufferLease lease, String what) {
        if (lease == null) {
            getContext().getLog().warn("{} without a lease ignored", what);
            return null;
        }
        DeviceBuffer buffer = leases.get(lease.id());
        if (buffer != null && buffer == lease.buffer()) {
            leases.remove(lease.id());
            allocatedBytes -= buffer.size();
            return buffer;
        }
        if (buffer == null && lease.id() > 0 && lease.id() <= leaseIdAtStart) {
            // Handed out before a restart: not part of this pool. Closing is idempotent and memory-safe.
            getContext().getLog().info("{} of lease {} from before the allocator restarted; closing its buffer",
                    what, lease.id());
            if (lease.buffer() != null) {
                lease.buffer().close();
            }
        } else if (buffer == null) {
            getContext().getLog().warn("{} of unknown lease {} ({} bytes) ignored: freed twice or never handed out",
                    what, lease.id(), lease.requestedBytes());
        } else {
            getContext().getLog().warn("{} of lease {} ignored: its buffer is not the one this lease was given",
                    what, lease.id());
        }
        return null;
    }

    private void cacheBuffer(DeviceBuffer buffer) {
        cache.computeIfAbsent(buffer.size(), c -> new ArrayDeque<>()).push(buffer);
        cachedBytes += buffer.size();
    }

    /**
     * Returns cached buffers to the device, largest class first, until reserved is at most
     * {@code targetReservedBytes} or the cache is empty. Returns the bytes released.
     */
    private long releaseCachedUntil(long targetReservedBytes) {
        long released = 0;
        while (reservedBytes() > targetReservedBytes && !cache.isEmpty()) {
            Map.Entry<Long, ArrayDeque<DeviceBuffer>> largest = cache.lastEntry();
            DeviceBuffer buffer = largest.getValue().pop();
            if (largest.getValue().isEmpty()) {
                cache.remove(largest.getKey());
            }
            cachedBytes -= buffer.size();
            released += buffer.size();
            buffer.close();
        }
        return released;
    }

    // ---- trim, stats, faults ------------------------------------------------------------------------

    private Behavior<Command> onTrim(Trim m) {
        long released = releaseCachedUntil(-1);
        serveWaiting();
        m.replyTo().tell(new Trimmed(released, stats()));
        return this;
    }

    private Behavior<Command> onGetStats(GetAllocatorStats m) {
        m.replyTo().tell(stats());
        return this;
    }

    private Behavior<Command> onInjectCrash(InjectCrash m) {
        if (!faults.enabled()) {
            getContext().getLog().warn("allocator ignored InjectCrash: mps-actors.fault-injection.enabled is off");
            return this;
        }
        faults.countCrash();
        throw new IllegalStateException("injected crash of the allocator: " + m.reason());
    }

    private AllocatorStats stats() {
        return new AllocatorStats(allocatedBytes, reservedBytes(), cachedBytes, pendingFreeBytes, peakAllocatedBytes,
                peakReservedBytes, limitBytes, waiting.size(), allocations, cacheHits, deviceAllocations, failures,
                leases.size());
    }

    private long reservedBytes() {
        return allocatedBytes + cachedBytes + pendingFreeBytes;
    }

    /** The pool's occupancy, for failure messages. */
    private String inUse() {
        return reservedBytes() + " of " + limitBytes + " bytes in use (allocated " + allocatedBytes + ", reserved "
                + reservedBytes() + ", pending-free " + pendingFreeBytes + ", cached " + cachedBytes + ")";
    }

    private static String describe(PointReported m) {
        if (m.reply() != null) {
            return m.reply().succeeded() ? "was reported as point " + m.reply().point() : "failed: " + m.reply().failure();
        }
        if (m.failure() instanceof TimeoutException) {
            return "was not reported in time (" + m.failure().getMessage() + ")";
        }
        return "was not reported: " + m.failure();
    }

    /**
     * Answers every waiting request and gives the device back what no client holds. Leases stay their
     * holders'; closing pending-free buffers is safe because the native layer frees each one after the
     * pending work that uses it.
     */
    private Behavior<Command> releaseAll(String why) {
        for (Waiter w : waiting.values()) {
            fail(w.request(), why + " while " + w.request().bytes() + " bytes waited for memory; ask again");
        }
        waiting.clear();
        releaseCachedUntil(-1);
        for (PendingFree p : pendingFree.values()) {
            p.buffer().close();
        }
        pendingFree.clear();
        pendingFreeBytes = 0;
        return this;
    }

    /**
     * The runtime is stopping, so the device must close: leases still held (or whose Free is still in the
     * mailbox, which a stopped actor never reads) go to {@code heldAtStop}, which closes them once their
     * holders cannot use them any more. A holder that uses one after that gets an IllegalStateException;
     * commands already encoded keep their native reference until they ran.
     */
    private Behavior<Command> closeLiveLeases() {
        if (!leases.isEmpty()) {
            getContext().getLog().debug("allocator stopped with {} leases outstanding; handing them over to be closed",
                    leases.size());
        }
        heldAtStop.accept(new ArrayList<>(leases.values()));
        leases.clear();
        return this;
    }
}
