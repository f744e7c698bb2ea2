package dev.mpsactors.runtime;

import dev.mpsactors.protocol.AllocatorProtocol;
import dev.mpsactors.protocol.RuntimeProtocol.RuntimeRefs;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamProtocol;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Device memory of one device, through its {@code AllocatorActor} and its streams' arenas. Failures complete a
 * stage exceptionally with an {@link MpsRuntimeException} carrying the owner's reason.
 */
public final class DeviceMemory {
    private final RuntimeRefs refs;
    private final Asker asker;

    DeviceMemory(RuntimeRefs refs, Asker asker) {
        this.refs = refs;
        this.asker = asker;
    }

    /**
     * Leases {@code bytes} of device memory from the allocator (a cached buffer of the size class when there is
     * one); waits, without blocking anyone, while the memory limit is reached, up to allocator.wait-timeout.
     */
    public CompletionStage<AllocatorProtocol.BufferLease> allocate(long bytes) {
        return asker.ask(refs.allocator(), (ActorRef<AllocatorProtocol.AllocationReply> r) ->
                new AllocatorProtocol.Allocate(bytes, r)).thenApply(DeviceMemory::lease);
    }

    /** Leases {@code bytes} from {@code stream}'s arena: reused at once for that stream's later work. */
    public CompletionStage<AllocatorProtocol.BufferLease> allocateOn(StreamHandle stream, long bytes) {
        return asker.ask(stream.owner(), (ActorRef<AllocatorProtocol.AllocationReply> r) ->
                new StreamProtocol.AllocateOnStream(bytes, r)).thenApply(DeviceMemory::lease);
    }

    /** Returns a lease no pending work uses; one-way, returns at once. */
    public void free(AllocatorProtocol.BufferLease lease) {
        refs.allocator().tell(new AllocatorProtocol.Free(lease));
    }

    /** Returns a lease once {@code point} of {@code stream} has completed; one-way, returns at once. */
    public void freeAfter(AllocatorProtocol.BufferLease lease, StreamHandle stream, long point) {
        refs.allocator().tell(new AllocatorProtocol.FreeAfter(lease, stream, point));
    }

    /** Returns a lease to {@code stream}'s arena (stream order makes its reuse safe); one-way. */
    public void freeOn(StreamHandle stream, AllocatorProtocol.BufferLease lease) {
        stream.owner().tell(new StreamProtocol.FreeOnStream(lease));
    }

    /** The allocator's counters: allocated, reserved, cached and pending-free bytes, peaks, waiting requests. */
    public CompletionStage<AllocatorProtocol.AllocatorStats> stats() {
        return asker.ask(refs.allocator(), AllocatorProtocol.GetAllocatorStats::new);
    }

    /** Returns every cached buffer to the device. */
    public CompletionStage<AllocatorProtocol.Trimmed> trim() {
        return asker.ask(refs.allocator(), AllocatorProtocol.Trim::new);
    }

    private static AllocatorProtocol.BufferLease lease(AllocatorProtocol.AllocationReply reply) {
        if (reply instanceof AllocatorProtocol.AllocationFailed f) {
            throw new MpsRuntimeException(f.reason());
        }
        return ((AllocatorProtocol.Allocated) reply).lease();
    }
}
