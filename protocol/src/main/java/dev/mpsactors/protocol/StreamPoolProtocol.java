package dev.mpsactors.protocol;

import java.util.List;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * Messages of the StreamPool, the scheduler that leases streams to work. Leasing picks the least loaded
 * stream; releasing is one-way and never waits for the stream's pending work, which still completes
 * (hazard 7 of docs/audit.md was a release that synchronised the stream on the caller's thread).
 */
public final class StreamPoolProtocol {
    private StreamPoolProtocol() {}

    public record StreamLease(long id, StreamHandle stream) {}

    public sealed interface Command permits Lease, Release, GetPoolLoad, Internal {}

    /** Messages private to the owner's implementation. */
    public non-sealed interface Internal extends Command {}

    public record Lease(ActorRef<Leased> replyTo) implements Command {}

    public record Leased(StreamLease lease) {}

    /** One-way: returns at once, whatever the stream still has to do. Unknown leases are ignored. */
    public record Release(StreamLease lease) implements Command {}

    public record GetPoolLoad(ActorRef<PoolLoad> replyTo) implements Command {}

    /** @param activeLeases per stream, in stream order */
    public record PoolLoad(List<Integer> activeLeases, long leasesGranted, long leasesReleased) {}
}
