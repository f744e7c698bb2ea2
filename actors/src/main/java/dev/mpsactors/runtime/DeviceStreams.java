package dev.mpsactors.runtime;

import dev.mpsactors.protocol.RuntimeProtocol.RuntimeRefs;
import dev.mpsactors.protocol.StreamHandle;
import dev.mpsactors.protocol.StreamPoolProtocol;
import dev.mpsactors.protocol.StreamProtocol;
import dev.mpsactors.protocol.StreamWork;
import java.util.List;
import java.util.concurrent.CompletionStage;
import org.apache.pekko.actor.typed.ActorRef;

/**
 * The streams of one device: their {@code StreamActor}s and the pool that leases them. Failures complete a stage
 * exceptionally with an {@link MpsRuntimeException} carrying the owner's reason.
 */
public final class DeviceStreams {
    private final RuntimeRefs refs;
    private final Asker asker;

    DeviceStreams(RuntimeRefs refs, Asker asker) {
        this.refs = refs;
        this.asker = asker;
    }

    /** Every stream of the device, by index. */
    public List<StreamHandle> handles() {
        return refs.streams();
    }

    /** Stream {@code index} of the device. */
    public StreamHandle get(int index) {
        return refs.streams().get(index);
    }

    /** How many streams the device has. */
    public int count() {
        return refs.streams().size();
    }

    /** Leases the least-busy stream; completes when one is free (leases queue without blocking). */
    public CompletionStage<StreamPoolProtocol.StreamLease> lease() {
        return asker.ask(refs.streamPool(), (ActorRef<StreamPoolProtocol.Leased> r) -> new StreamPoolProtocol.Lease(r))
                .thenApply(StreamPoolProtocol.Leased::lease);
    }

    /** Gives a lease back; one-way, returns at once. The stream's pending work still completes. */
    public void release(StreamPoolProtocol.StreamLease lease) {
        refs.streamPool().tell(new StreamPoolProtocol.Release(lease));
    }

    /** Leases held and waiting now. */
    public CompletionStage<StreamPoolProtocol.PoolLoad> poolLoad() {
        return asker.ask(refs.streamPool(), StreamPoolProtocol.GetPoolLoad::new);
    }

    /** Encodes and (when {@code commit}) commits; completes when the work is encoded, not when it ran. */
    public CompletionStage<StreamProtocol.Submitted> submit(StreamHandle stream, List<StreamWork> work, boolean commit) {
        return asker.ask(stream.owner(), (ActorRef<StreamProtocol.SubmitReply> r) ->
                new StreamProtocol.Submit(work, commit, r)).thenApply(DeviceStreams::submitted);
    }

    /** Encodes, commits and completes when the work has executed on the device. */
    public CompletionStage<StreamProtocol.PointCompleted> run(StreamHandle stream, List<StreamWork> work) {
        // One ask: onComplete hears once, on completion or at once if the submission is refused.
        return asker.ask(stream.owner(), (ActorRef<StreamProtocol.PointCompleted> onComplete) ->
                new StreamProtocol.Submit(work, true, asker.system().ignoreRef(), onComplete))
                .thenApply(DeviceStreams::completed);
    }

    /** Commits the stream's open command buffer; completes with its point. */
    public CompletionStage<StreamProtocol.Submitted> flush(StreamHandle stream) {
        return asker.ask(stream.owner(), (ActorRef<StreamProtocol.SubmitReply> r) -> new StreamProtocol.Flush(r))
                .thenApply(DeviceStreams::submitted);
    }

    /** Completes when {@code point} of {@code stream} has executed (exceptionally if it failed). */
    public CompletionStage<StreamProtocol.PointCompleted> whenComplete(StreamHandle stream, long point) {
        return asker.ask(stream.owner(), (ActorRef<StreamProtocol.PointCompleted> r) ->
                new StreamProtocol.NotifyWhenComplete(point, r)).thenApply(DeviceStreams::completed);
    }

    /** Makes {@code stream} wait on the device for {@code point} of {@code other}. */
    public CompletionStage<StreamProtocol.WaitEncoded> waitFor(StreamHandle stream, StreamHandle other, long point) {
        return asker.ask(stream.owner(), (ActorRef<StreamProtocol.WaitReply> r) ->
                        new StreamProtocol.WaitFor(other, point, r))
                .thenApply(reply -> {
                    if (reply instanceof StreamProtocol.WaitFailed f) {
                        throw new MpsRuntimeException(f.reason());
                    }
                    return (StreamProtocol.WaitEncoded) reply;
                });
    }

    /** The stream's counters: points committed and completed, busy time, arena. */
    public CompletionStage<StreamProtocol.StreamStats> stats(StreamHandle stream) {
        return asker.ask(stream.owner(), StreamProtocol.GetStreamStats::new);
    }

    private static StreamProtocol.Submitted submitted(StreamProtocol.SubmitReply reply) {
        if (reply instanceof StreamProtocol.SubmitFailed f) {
            throw new MpsRuntimeException(f.reason());
        }
        return (StreamProtocol.Submitted) reply;
    }

    private static StreamProtocol.PointCompleted completed(StreamProtocol.PointCompleted c) {
        if (!c.succeeded()) {
            throw new MpsRuntimeException(c.failure());
        }
        return c;
    }
}
