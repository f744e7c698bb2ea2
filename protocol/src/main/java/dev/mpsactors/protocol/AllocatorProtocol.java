package dev.mpsactors.protocol;

import dev.mpsactors.nativemps.DeviceBuffer;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Messages of the AllocatorActor, the single owner of the device's memory pool: size classes, cached
 * free buffers, buffers waiting for a timeline point before they may be reused, the memory limit and the
 * queue of requests waiting under it. Nobody blocks: a request over the limit waits as a queued message
 * and is answered when memory comes back or its time runs out (hazard 5 of docs/audit.md was a blocking wait under
 * the pool's lock).
 */
public final class AllocatorProtocol {
    private AllocatorProtocol() {}

    /**
     * Memory handed to a client until it frees it. {@code buffer.size()} is the size class, at least
     * {@code requestedBytes}.
     */
    public record BufferLease(long id, DeviceBuffer buffer, long requestedBytes) {
        public long classBytes() {
            return buffer.size();
        }
    }

    public sealed interface Command permits Allocate, Free, FreeAfter, Trim, GetAllocatorStats, InjectCrash,
            Internal {}

    /** Messages private to the owner's implementation. */
    public non-sealed interface Internal extends Command {}

    public record Allocate(long bytes, ActorRef<AllocationReply> replyTo) implements Command {}

    public sealed interface AllocationReply permits Allocated, AllocationFailed {}

    public record Allocated(BufferLease lease) implements AllocationReply {}

    public record AllocationFailed(long bytes, String reason) implements AllocationReply {}

    /** The lease's memory is reusable at once: no pending device work uses it. One-way. */
    public record Free(BufferLease lease) implements Command {}

    /** The lease's memory is reusable once {@code point} of {@code stream} has executed. One-way. */
    public record FreeAfter(BufferLease lease, StreamHandle stream, long point) implements Command {}

    /** Returns every cached free buffer to the device (empty-cache). */
    public record Trim(ActorRef<Trimmed> replyTo) implements Command {}

    public record Trimmed(long releasedBytes, AllocatorStats stats) {}

    public record GetAllocatorStats(ActorRef<AllocatorStats> replyTo) implements Command {}

    /**
     * Byte counts of the pool (size-class bytes):
     *
     * @param allocatedBytes   leased to clients
     * @param reservedBytes    held from the device: allocated + cached + waiting for a point
     * @param cachedBytes      free and reusable now
     * @param pendingFreeBytes freed after a point that has not executed yet
     * @param limitBytes       the memory limit (high watermark); requests beyond it wait
     * @param waitingRequests  requests queued under the limit
     */
    public record AllocatorStats(long allocatedBytes, long reservedBytes, long cachedBytes, long pendingFreeBytes,
                                 long peakAllocatedBytes, long peakReservedBytes, long limitBytes,
                                 int waitingRequests, long allocations, long cacheHits, long deviceAllocations,
                                 long failures, long liveLeases) {}

    /** Fault injection: the allocator throws, so supervision restarts it. Ignored unless enabled in config. */
    public record InjectCrash(String reason) implements Command {}
}
